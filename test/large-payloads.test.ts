import t from 'tap';
import { deployedNodeOptions } from '../bench/workers.ts';
import { startWorkerProcess, type CliProcess } from './helpers/cli.ts';
import { createTestDatabase } from './helpers/database.ts';
import { resultOf } from './helpers/ledger.ts';
import { waitFor } from './helpers/wait.ts';

// Issue 24 item 2: legal payloads of 60 KiB times graphile-worker's fetch (3 x BILLING_CONCURRENCY
// = 1,200 jobs at the defaults) were ~72 MB of JSON text in one fetch, and a worker with the
// deployed 128 MB heap died at its first fetch, and again at each restart. Payloads over 4 KiB are
// kept apart from the job row (sql/0028_large_payloads_apart.sql) and loaded by each task within a
// per-process byte budget. A real `billing worker` process with the deployed V8 limits and the
// default concurrency.
t.setTimeout(600_000);

const jobs = 2_000;
const database = await createTestDatabase('large_payloads');
let worker: CliProcess | undefined;
t.teardown(async () => {
  await worker?.stop('SIGKILL');
  await database.drop();
});
const count = async (sql: string) => Number((await database.query<{ n: bigint }>(sql)).rows[0]!.n);

t.test('2,000 payloads of 60 KiB: a 128 MB worker answers every one and lives', async (t) => {
  await database.query("insert into billing.accounts (account, currency, balance) values ('lp-1', 'USD', 0)");
  await database.query(
    `select count(billing.submit('credit', json_build_object('id', 'large-' || g, 'account', 'lp-1', 'amount', '1',
       'metadata', json_build_object('note', repeat('x', 60000))))) from generate_series(1, $1::int) g`,
    [jobs],
  );
  t.equal(
    await count(`select count(*) as n from graphile_worker._private_jobs where octet_length(payload::text) > 4096`),
    0,
    'no job row holds a payload over 4 KiB',
  );
  t.equal(await count('select count(*) as n from billing.job_payloads'), jobs, 'each is kept apart');

  ({ worker } = await startWorkerProcess(database.url, {
    NODE_OPTIONS: deployedNodeOptions,
    BILLING_CONCURRENCY: '400',
  }));
  const running = worker;
  await waitFor(
    'every command answered, or the worker gone',
    async () =>
      !running.running || (await count("select count(*) as n from billing.operations where id like 'large-%'")) === jobs
        ? true
        : undefined,
    300_000,
  );
  t.ok(running.running, 'the worker is alive');
  t.equal(
    await count("select count(*) as n from billing.operations where id like 'large-%'"),
    jobs,
    'each got its result',
  );
  await waitFor('the kept payloads deleted with their jobs', async () =>
    (await count('select count(*) as n from billing.job_payloads')) === 0 ? true : undefined,
  );
});

t.test('a batch job kept apart: each element its own result; a marker written by a client is refused', async (t) => {
  const note = 'y'.repeat(3000);
  await database.query(`select graphile_worker.add_job('billing/credit', $1::json)`, [
    JSON.stringify([1, 2, 3].map((n) => ({ id: `batch-${n}`, account: 'lp-1', amount: '1', metadata: { note } }))),
  ]);
  for (const n of [1, 2, 3]) t.equal((await resultOf(database, `batch-${n}`, 60_000)).code, 'ok', `batch-${n} applied`);

  const { rows } = await database.query<{ id: string }>(
    `select (graphile_worker.add_job('billing/credit', '{"billing:payload_apart": 999999999}'::json)).id::text as id`,
  );
  const forged = await resultOf(database, `job:${rows[0]!.id}`, 60_000);
  t.equal(forged.code, 'invalid_command', 'a marker with no payload kept for its job is an invalid command');
});
