// PostgreSQL restarts under a running `billing worker` (a real process, a throwaway cluster, a real
// immediate restart): the worker stays up, gets a fresh queue runner by itself and applies commands
// enqueued after the restart; it counts the restart on /metrics; SIGTERM still stops it cleanly.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import t from 'tap';
import { migrate } from '../src/db/migrate.ts';
import { freePort } from '../src/embedded/embedded-default.ts';
import { PostgresCluster } from '../src/embedded/postgres-cluster.ts';
import { CliProcess } from './helpers/cli.ts';
import { waitFor } from './helpers/wait.ts';
import { queryOnce } from '../chaos/query-once.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'pg-billing-restart-'));
const cluster = new PostgresCluster({ dataDir: path.join(dir, 'pgdata'), port: await freePort(), initdbSync: false });
const workers: CliProcess[] = [];
t.teardown(async () => {
  for (const worker of workers) await worker.stop('SIGKILL');
  await cluster.stop('immediate').catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});
await cluster.start();
const url = cluster.databaseUrl('postgres');
await migrate({ connectionString: url });

const sql = <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => queryOnce<R>(url, text, values);

const statusOf = async (id: string) =>
  (await sql<{ status: string }>('select status from billing.operations where id = $1', [id]))[0]?.status;
const enqueue = (payload: object, task = 'billing/credit') =>
  sql('select graphile_worker.add_job($1, $2::json)', [task, JSON.stringify(payload)]);

t.test('a worker carries on across an immediate PostgreSQL restart', async (t) => {
  const worker = new CliProcess(['worker'], { DATABASE_URL: url, BILLING_HTTP_PORT: '0', BILLING_CONCURRENCY: '10' });
  workers.push(worker);
  const httpPort = Number((await worker.waitFor(/"http_port":(\d+)[^\n]*"msg":"worker started"/))[1]);
  await enqueue({ id: 'before', account: 'r-1' }, 'billing/open_account');
  t.equal(await waitFor('the first result', () => statusOf('before'), 60_000, { throughErrors: true }), 'applied');

  await cluster.restart({ mode: 'immediate' });
  await worker.waitFor(/"msg":"queue runner lost \(the database went away/);
  await worker.waitFor(/"msg":"back at work: a fresh queue runner takes jobs"/);
  t.ok(worker.running, 'the worker process is still running');

  await enqueue({ id: 'after', account: 'r-1', amount: '5' });
  t.equal(
    await waitFor('a result after the restart', () => statusOf('after'), 60_000, { throughErrors: true }),
    'applied',
    'a command enqueued after the restart is applied',
  );
  const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  t.match(metrics, /^billing_runner_restarts_total 1$/m, 'the restart is counted');
  t.equal((await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status, 200, 'ready again');
  t.notMatch(worker.output, /"level":(50|60)[^\n]*"msg":"(uncaught|worker stopped working)/, 'no fatal line');

  t.same(await worker.stop('SIGTERM'), { code: 0, signal: null }, 'SIGTERM after the restart: a clean exit 0');
  t.equal(
    (await sql('select 1 from graphile_worker.jobs where locked_at is not null')).length,
    0,
    'no job left locked',
  );
});
