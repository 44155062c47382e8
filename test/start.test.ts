// Smoke test of `npm start`'s default: no DATABASE_URL, so `billing start` runs an embedded
// PostgreSQL (in a temp data folder, on a free port), migrates and starts a worker; `billing demo`
// from another process finds it by itself; it carries on across a restart of that server; SIGINT
// and SIGHUP stop the worker and the server cleanly.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { freePort, readEmbeddedDatabaseUrl } from '../src/embedded/embedded-default.ts';
import { PostgresCluster, processAlive, readPostmasterPid } from '../src/embedded/postgres-cluster.ts';
import { CliProcess, runCli } from './helpers/cli.ts';

/** Alive and not a zombie: here an exited postmaster may linger unreaped, as its parent is the init process. */
function running(pid: number): boolean {
  if (!processAlive(pid)) return false;
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

const dataDir = mkdtempSync(path.join(tmpdir(), 'pg-billing-start-'));
const env = { DATABASE_URL: undefined, BILLING_DATA_DIR: dataDir, BILLING_HTTP_PORT: '0' };
const port = await freePort();
const service = new CliProcess(['start', '--embedded-port', String(port)], env);
t.teardown(async () => {
  await service.stop('SIGKILL');
  const left = readPostmasterPid(path.join(dataDir, 'pgdata'));
  if (left && processAlive(left.pid)) process.kill(left.pid, 'SIGQUIT');
  rmSync(dataDir, { recursive: true, force: true });
});

t.test('start, demo from another process, Ctrl-C', async (t) => {
  await service.waitFor(/pg-billing is ready: .*\n/, 120_000);
  t.match(service.output, new RegExp(`embedded PostgreSQL at postgres://postgres@127\\.0\\.0\\.1:${port}/billing`));
  t.match(
    service.output,
    /In another terminal, in this folder \(the CLI finds this server by itself\):\n {2}BILLING_DATA_DIR=\S+ npx billing demo/,
  );
  const url = readEmbeddedDatabaseUrl(dataDir);
  t.equal(
    url,
    `postgres://postgres@127.0.0.1:${port}/billing`,
    'another process finds the server through the data folder',
  );
  const postmaster = readPostmasterPid(path.join(dataDir, 'pgdata'));
  t.ok(postmaster && running(postmaster.pid), 'the embedded server runs');

  const metricsPort = Number(
    service.output.match(
      /metrics: http:\/\/127\.0\.0\.1:(\d+)\/metrics {2}\(also \/healthz, \/readyz; listening on 127\.0\.0\.1:(\d+)\)/,
    )?.[1],
  );
  // The log line comes from pino's asynchronous stdout writer and the banner from console.log, so the
  // banner can reach the pipe first: wait for the line rather than expect it already there.
  const started = await service.waitFor(/"http_port":(\d+),"http_host":"([^"]+)"[^\n]*"msg":"worker started"/);
  t.same([Number(started[1]), started[2]], [metricsPort, '127.0.0.1'], 'the banner says where the server is bound');
  t.equal((await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).status, 200);

  const demo = await runCli(['demo'], env);
  t.equal(demo.code, 0, demo.stderr);
  t.match(demo.stdout, /balances: 1 = 666, 2 = 111/);
  t.equal(demo.stdout.split('\n').filter((line) => /^\d\. .*applied ok/.test(line)).length, 4, 'four applied results');

  // The embedded server restarts under it (crash and recovery): `billing start` keeps running.
  await new PostgresCluster({ dataDir: path.join(dataDir, 'pgdata'), port }).restart({ mode: 'immediate' });
  await service.waitFor(/"msg":"back at work: a fresh queue runner takes jobs"/);
  t.ok(service.running, 'still running after the PostgreSQL restart');
  const again = await runCli(['demo'], env);
  t.equal(again.code, 0, again.stderr);
  t.match(again.stdout, /balances: 3 = 666, 4 = 111/, 'and it works');

  const exit = await service.stop('SIGINT');
  t.same(exit, { code: 0, signal: null }, 'clean exit');
  t.match(service.output, /"msg":"worker stopped"/);
  t.match(service.output, /"msg":"embedded PostgreSQL: stopped"/);
  // pg_ctl stop -w returns once postmaster.pid is gone, a moment before the process itself is.
  for (let i = 0; i < 100 && running(postmaster!.pid); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  t.notOk(running(postmaster!.pid), 'the embedded server stopped with it');
  t.equal(readEmbeddedDatabaseUrl(dataDir), undefined, 'and nothing claims to run for the folder');
  const after = await runCli(['balance', '1'], env);
  t.equal(after.code, 1);
  t.match(
    after.stderr,
    /no embedded PostgreSQL is running [\s\S]*Run `npm start`/,
    'the CLI says how to get a database',
  );
});

t.test('SIGHUP (the terminal closed) stops it like Ctrl-C: the embedded server stops too', async (t) => {
  const second = new CliProcess(['start', '--embedded-port', String(port)], env);
  t.teardown(() => second.stop('SIGKILL'));
  await second.waitFor(/pg-billing is ready: .*\n/, 120_000);
  const postmaster = readPostmasterPid(path.join(dataDir, 'pgdata'));
  t.ok(postmaster && running(postmaster.pid), 'the embedded server runs');
  t.same(await second.stop('SIGHUP'), { code: 0, signal: null }, 'clean exit');
  t.match(second.output, /"msg":"SIGHUP: stopping gracefully/);
  t.match(second.output, /"msg":"embedded PostgreSQL: stopped"/);
  for (let i = 0; i < 100 && running(postmaster!.pid); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  t.notOk(running(postmaster!.pid), 'the embedded server stopped with it');
});
