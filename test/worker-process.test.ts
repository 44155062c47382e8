// A real `billing worker` process: health endpoints, Prometheus counters that move while commands
// run, and a graceful SIGTERM with jobs in flight (exit 0, nothing left locked, nothing lost).
import t from 'tap';
import { startWorkerProcess, type CliProcess } from './helpers/cli.ts';
import { createTestDatabase } from './helpers/database.ts';
import { resultOf } from './helpers/ledger.ts';

const database = await createTestDatabase('worker_process');
const running: CliProcess[] = [];
t.teardown(async () => {
  for (const worker of running) await worker.stop('SIGKILL');
  await database.drop();
});

const count = async (sql: string, values?: unknown[]) => Number((await database.query<{ n: bigint }>(sql, values)).rows[0]!.n);

/** Enqueues `n` credits of 1 to `account` in one statement, as an application would from SQL. */
async function enqueueCredits(account: string, prefix: string, n: number): Promise<void> {
  await database.query(`select graphile_worker.add_job('billing/credit',
      json_build_object('id', $1 || i, 'account', $2::text, 'amount', '1')) from generate_series(1, $3::int) as i`, [prefix, account, n]);
}

function commandsCounter(metrics: string, type: string, code: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(`billing_commands_total{type="${type}",code="${code}"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

t.test('/healthz, /readyz and /metrics; billing_commands_total moves while commands run', async (t) => {
  const { worker, httpPort } = await startWorkerProcess(database.url, { BILLING_CONCURRENCY: '50' });
  running.push(worker);
  const get = async (path: string) => {
    const response = await fetch(`http://127.0.0.1:${httpPort}${path}`);
    return { status: response.status, body: await response.text() };
  };
  t.same(await get('/healthz'), { status: 200, body: 'ok\n' });
  t.same(await get('/readyz'), { status: 200, body: 'ready\n' });
  t.equal((await get('/nowhere')).status, 404);

  await database.query(`select graphile_worker.add_job('billing/open_account', '{"id":"m-open","account":"m-1"}'::json)`);
  await resultOf(database, 'm-open');
  const before = commandsCounter((await get('/metrics')).body, 'credit', 'ok');
  t.equal(before, 0);

  const total = 1500;
  await enqueueCredits('m-1', 'm-credit-', total);
  const scraped: number[] = [];
  for (;;) {
    const metrics = (await get('/metrics')).body;
    scraped.push(commandsCounter(metrics, 'credit', 'ok'));
    if (scraped.at(-1)! >= total) {
      t.match(metrics, /billing_command_latency_seconds_count\{type="credit"\} 1500/);
      t.match(metrics, /# TYPE billing_queue_depth gauge/);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  t.comment(`billing_commands_total{credit,ok} as scraped: ${[...new Set(scraped)].join(' -> ')}`);
  t.ok(scraped.some((value) => value > 0 && value < total), 'seen moving while the commands ran');
  t.ok(scraped.every((value, i) => i === 0 || value >= scraped[i - 1]!), 'never goes down');
  t.equal(scraped.at(-1), total, 'counts each command once');
  t.equal(await count("select count(*) as n from billing.operations where id like 'm-credit-%'"), total);
  t.match(worker.output, /"command_id":"m-credit-\d+","job_id":"\d+"/, 'JSON logs carry the command id and the job id');

  const stopped = await worker.stop('SIGTERM');
  t.same(stopped, { code: 0, signal: null }, 'SIGTERM: exit 0');
});

t.test('SIGTERM with jobs in flight: exit 0, no job left locked, every command gets its result once', async (t) => {
  const { worker: first } = await startWorkerProcess(database.url, { BILLING_CONCURRENCY: '100', BILLING_BATCH_SIZE: '20' });
  running.push(first);
  await database.query(`select graphile_worker.add_job('billing/open_account', '{"id":"s-open","account":"s-1"}'::json)`);
  await resultOf(database, 's-open');
  const total = 4000;
  await enqueueCredits('s-1', 's-credit-', total);
  // Signal once the worker is busy: some results are in, most jobs still wait or run.
  for (;;) {
    if (await count("select count(*) as n from billing.operations where id like 's-credit-%'") > 50) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const exit = await first.stop('SIGTERM');
  t.same(exit, { code: 0, signal: null }, 'graceful stop: exit 0');
  t.match(first.output, /"msg":"worker stopped"/);
  t.equal(await count('select count(*) as n from graphile_worker.jobs where locked_at is not null'), 0, 'no job left locked');
  const done = await count("select count(*) as n from billing.operations where id like 's-credit-%'");
  t.comment(`${done} of ${total} applied before the stop; the rest wait, unlocked`);
  t.equal(await count("select count(*) as n from graphile_worker.jobs where task_identifier = 'billing/credit'"), total - done,
    'every command without a result is still queued');

  const { worker: second } = await startWorkerProcess(database.url, { BILLING_CONCURRENCY: '100' });
  running.push(second);
  for (;;) {
    if (await count("select count(*) as n from billing.operations where id like 's-credit-%'") === total) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  t.equal(await count("select count(*) as n from billing.entries where operation_id like 's-credit-%'"), total, 'one entry per command');
  t.equal((await database.query<{ balance: bigint }>("select balance from billing.accounts where account = 's-1'")).rows[0]!.balance, BigInt(total));
  t.same(await second.stop('SIGINT'), { code: 0, signal: null }, 'SIGINT: exit 0 as well');
});

t.test('a worker that loses its liveness registration exits 70, for its supervisor to restart it', async (t) => {
  const { worker } = await startWorkerProcess(database.url);
  running.push(worker);
  const livenessPids = async () => (await database.query<{ pid: number }>(
    "select pid from pg_stat_activity where datname = current_database() and application_name = 'pg-billing liveness'")).rows.map((r) => r.pid);
  for (let i = 0; i < 200 && (await livenessPids()).length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  const pids = await livenessPids();
  t.equal(pids.length, 1, 'one liveness connection');
  await database.query('select pg_terminate_backend($1)', [pids[0]]);
  t.same(await worker.exited, { code: 70, signal: null });
  t.match(worker.output, /"level":60[^\n]*worker stopped working/, 'a fatal log line says why');
});
