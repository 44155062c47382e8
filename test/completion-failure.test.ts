// A `billing worker` whose graphile-worker runner fails to complete a batch of jobs (here: the
// completion waits for a job row another session holds locked, and the test cancels it; a
// lock_timeout does the same, at a moment the test would have to guess). graphile-worker then shuts that runner down
// by itself, and in 0.18.0 that shutdown never ends when jobs in flight complete one by one after
// the failure: its completion batcher counts each of them as finished twice, and its release waits
// for a count of exactly zero. Before the fix the worker then took no more jobs, kept the failed
// job locked under its live registration, and ignored SIGTERM (seen in the bench, with 599 jobs).
// It must carry on with a fresh runner, end the stuck runner's registration so that its job is
// handed back, and stop on SIGTERM.
import pg from 'pg';
import t from 'tap';
import { CliProcess } from './helpers/cli.ts';
import { createTestDatabase } from './helpers/database.ts';
import { waitFor } from './helpers/wait.ts';

/** Long: nothing here waits out a timeout, the test ends the waits it makes. */
const lockTimeoutMs = 120_000;

t.test('a runner that could not complete its jobs is replaced, and the jobs are handed back', async (t) => {
  const database = await createTestDatabase('completion-failure');
  t.teardown(() => database.drop());
  const session = async () => {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    t.teardown(() => client.end().catch(() => {}));
    const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
    return { client, pid: rows[0]!.pid };
  };
  const enqueue = async (task: string, payload: object) => {
    const { rows } = await database.query<{ id: string }>('select (graphile_worker.add_job($1, $2::json)).id', [
      task,
      JSON.stringify(payload),
    ]);
    return rows[0]!.id;
  };
  const statusOf = async (id: string) =>
    (await database.query<{ status: string }>('select status from billing.operations where id = $1', [id])).rows[0]
      ?.status;
  /** The backend of the worker waiting for a lock that `pid` holds. */
  const blockedBy = async (pid: number) =>
    (
      await database.query<{ pid: number }>(`select pid from pg_stat_activity where $1 = any(pg_blocking_pids(pid))`, [
        pid,
      ])
    ).rows[0]?.pid;

  const worker = new CliProcess(['worker'], {
    DATABASE_URL: database.url,
    BILLING_HTTP_PORT: '0',
    BILLING_CONCURRENCY: '10',
    BILLING_LOCK_TIMEOUT_MS: String(lockTimeoutMs),
    BILLING_RECOVERY_INTERVAL_MS: '500',
    BILLING_BATCHES_IN_FLIGHT: '4',
  });
  t.teardown(() => worker.stop('SIGKILL'));
  await worker.waitFor(/"msg":"worker started"/);
  const accounts = ['x', 'y1', 'y2', 'y3'];
  for (const account of accounts) await enqueue('billing/open_account', { id: `open-${account}`, account });
  for (const account of accounts) await waitFor(`account ${account} open`, () => statusOf(`open-${account}`));

  // Command a is applied while its job row is locked by s2, so that completing it fails.
  const s1 = await session();
  const s2 = await session();
  await s1.client.query(`begin; select 1 from billing.accounts where account = 'x' for update`);
  const jobA = await enqueue('billing/credit', { id: 'a', account: 'x', amount: '7' });
  await waitFor('command a waiting for account x', () => blockedBy(s1.pid));
  await s2.client.query('begin');
  await s2.client.query('select 1 from graphile_worker._private_jobs where id = $1 for update', [jobA]);
  await s1.client.query('commit');
  const completion = await waitFor('the completion of job a waiting for its row', () => blockedBy(s2.pid));

  // Commands b1, b2, b3 are in flight when that completion fails (each in a transaction of its
  // own, waiting for a lock), and each completes after it, one by one: graphile-worker's batcher
  // then counts below zero.
  const blockers: { client: pg.Client; pid: number }[] = [];
  const jobsB: string[] = [];
  for (const n of [1, 2, 3]) {
    const blocker = await session();
    await blocker.client.query('begin');
    await blocker.client.query('select 1 from billing.accounts where account = $1 for update', [`y${n}`]);
    blockers.push(blocker);
    jobsB.push(await enqueue('billing/credit', { id: `b${n}`, account: `y${n}`, amount: '1' }));
    await waitFor(`command b${n} waiting for its account`, () => blockedBy(blocker.pid));
  }
  await database.query('select pg_cancel_backend($1)', [completion]);
  await worker.waitFor(/"level":50[^\n]*Failed to complete jobs/);
  await s2.client.query('commit');
  for (const [index, blocker] of blockers.entries()) {
    await blocker.client.query('commit');
    await waitFor(`job b${index + 1} completed`, async () =>
      (await database.query('select 1 from graphile_worker.jobs where id = $1', [jobsB[index]])).rows.length === 0
        ? true
        : undefined,
    );
  }

  await enqueue('billing/credit', { id: 'c', account: 'y1', amount: '1' });
  t.equal(
    await waitFor('c applied', () => statusOf('c'), 30_000),
    'applied',
    'the worker still takes jobs: a command enqueued after the failure is applied',
  );
  await waitFor(
    'no job left',
    async () => ((await database.query('select 1 from graphile_worker.jobs')).rows.length === 0 ? true : undefined),
    30_000,
  );
  t.pass("job a was handed back and completed (its command's first result stands)");
  const { rows: balances } = await database.query<{ account: string; balance: string }>(
    `select account, balance::text from billing.accounts order by account`,
  );
  t.same(
    balances,
    [
      { account: 'x', balance: '7' },
      { account: 'y1', balance: '2' },
      { account: 'y2', balance: '1' },
      { account: 'y3', balance: '1' },
    ],
    'each command applied once',
  );
  t.same(await worker.stop('SIGTERM', 20_000), { code: 0, signal: null }, 'SIGTERM: a clean exit 0');
});
