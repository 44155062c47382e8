// libpq's multi-host URLs (src/db/hosts.ts): parsed as libpq reads them, accepted by the config,
// and a pool on one whose first host is down reaches the next. Standbys and failovers are in
// test/failover.test.ts (a cluster of its own).
import t from 'tap';
import { checkDatabaseUrl, ConfigError } from '../src/config.ts';
import { answers, resolveServerUrl, withDatabase } from '../src/db/connection.ts';
import { HostClient, parseDatabaseUrl, writableUrl } from '../src/db/hosts.ts';
import { createPool } from '../src/db/pool.ts';

t.test('parses hosts, ports and target_session_attrs as libpq does', async (t) => {
  const parsed = parseDatabaseUrl(
    'postgres://u:p%40ss@h1:5433,h2,[::1]:6000/db?target_session_attrs=read-write&sslmode=disable',
  );
  t.same(parsed.hosts, [
    { host: 'h1', port: 5433 },
    { host: 'h2', port: 5432 },
    { host: '::1', port: 6000 },
  ]);
  t.equal(parsed.targetSessionAttrs, 'read-write');
  t.equal(parsed.urlFor(parsed.hosts[2]!), 'postgres://u:p%40ss@[::1]:6000/db?sslmode=disable');
  t.equal(parseDatabaseUrl('postgresql://h/db').targetSessionAttrs, 'any', 'any is the default');
  t.throws(() => parseDatabaseUrl('postgres://h1,h2/db?target_session_attrs=master'), /target_session_attrs must be/);
  t.throws(() => parseDatabaseUrl('postgres://h1,,h2/db'), /empty or malformed/);
  t.throws(() => parseDatabaseUrl('mysql://h/db'), /not a postgres/);
});

t.test('the config takes a multi-host URL and still refuses what is not a URL', async (t) => {
  const url = 'postgres://u@h1:5432,h2:5432/db?target_session_attrs=read-write';
  t.equal(checkDatabaseUrl('DATABASE_URL', url), url);
  t.throws(() => checkDatabaseUrl('DATABASE_URL', 'postgres://h1/db?target_session_attrs=master'), ConfigError);
  t.equal(withDatabase(url, 'other'), 'postgres://u@h1:5432,h2:5432/other?target_session_attrs=read-write');
});

t.test('writing parts ask for read-write unless the URL asks for primary', async (t) => {
  t.equal(writableUrl('postgres://h1,h2/db'), 'postgres://h1,h2/db?target_session_attrs=read-write');
  t.equal(writableUrl('postgres://h1/db?a=b'), 'postgres://h1/db?a=b&target_session_attrs=read-write');
  t.equal(
    writableUrl('postgres://h1,h2/db?target_session_attrs=primary'),
    'postgres://h1,h2/db?target_session_attrs=primary',
  );
  t.throws(() => writableUrl('postgres://h1,h2/db?target_session_attrs=standby'), /cannot be used to write/);
});

t.test('a pool on a URL whose first host is down uses the next one', async (t) => {
  const server = parseDatabaseUrl(await resolveServerUrl()).hosts[0]!;
  // Port 1 on 127.0.0.1: nothing listens there (privileged, never an ephemeral port).
  const url = `postgres://postgres@127.0.0.1:1,${server.host}:${server.port}/postgres?target_session_attrs=read-write`;
  const pool = createPool({ connectionString: url, max: 2 });
  t.teardown(() => pool.end());
  const { rows } = await pool.query<{ port: number }>('select inet_server_port() as port');
  t.equal(rows[0]!.port, server.port);
  t.ok(await answers(url), 'answers() follows the same choice');
  const client = new HostClient({ connectionString: 'postgres://postgres@127.0.0.1:1,127.0.0.1:2/postgres' });
  await t.rejects(client.connect(), /no server fits target_session_attrs=any: 127.0.0.1:1 .*; 127.0.0.1:2 /);
});

t.test(
  'sslmode=prefer as libpq reads it: plain where the server has no TLS (pg_autoctl show uri writes it)',
  async (t) => {
    const parsed = parseDatabaseUrl('postgres://h1,h2/db?target_session_attrs=read-write&sslmode=prefer');
    t.equal(parsed.sslPrefer, true);
    t.equal(
      parsed.urlFor(parsed.hosts[0]!),
      'postgres://h1:5432/db',
      'pg is not given the prefer it reads as verify-full',
    );
    t.equal(parseDatabaseUrl('postgres://h1/db?sslmode=require').sslPrefer, false, 'require stays as pg reads it');
    t.equal(parseDatabaseUrl('postgres://h1/db?sslmode=prefer&uselibpqcompat=true').sslPrefer, false);

    // The test server runs without TLS (as scratch servers and pg_autoctl --no-ssl nodes do): node-pg
    // alone fails there with "The server does not support SSL connections".
    const server = parseDatabaseUrl(await resolveServerUrl()).hosts[0]!;
    for (const url of [
      `postgres://postgres@127.0.0.1:1,${server.host}:${server.port}/postgres?target_session_attrs=read-write&sslmode=prefer`,
      `postgres://postgres@${server.host}:${server.port}/postgres?sslmode=prefer`,
    ]) {
      const pool = createPool({ connectionString: url, max: 2 });
      t.teardown(() => pool.end());
      const { rows } = await pool.query<{ port: number; tls: boolean }>(
        'select inet_server_port() as port, coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false) as tls',
      );
      t.same(rows[0], { port: server.port, tls: false }, `${url}: reached, in plain`);
    }
  },
);
