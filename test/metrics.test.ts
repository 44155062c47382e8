// /metrics answers from memory: the gauges read from the database (queue depth, oldest waiting job)
// are refreshed by a loop of their own, on a session of their own, so that no number of scrapes
// takes a connection of the ledger's pool or costs more when the queue is long. A real worker process.
import pg from 'pg';
import t from 'tap';
import { startWorkerProcess } from './helpers/cli.ts';
import { createTestDatabase } from './helpers/database.ts';
import { waitFor } from './helpers/wait.ts';

const database = await createTestDatabase('metrics');
const { worker, httpPort } = await startWorkerProcess(database.url, { BILLING_METRICS_INTERVAL_MS: '200' });
t.teardown(async () => {
  await worker.stop('SIGKILL');
  await database.drop();
});

const scrape = async () => {
  const response = await fetch(`http://127.0.0.1:${httpPort}/metrics`);
  return { status: response.status, body: await response.text() };
};
const sample = (metrics: string, series: string) => {
  const line = metrics.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
};

t.test('the queue gauges follow the queue (refreshed by their loop, not by the scrape)', async (t) => {
  // Due in an hour: they wait, and no worker takes them.
  await database.query(
    `select graphile_worker.add_job('billing/credit', json_build_object('id', 'later-' || i, 'account', 'a', 'amount', '1'),
       run_at => now() + interval '1 hour') from generate_series(1, 7) as i`,
  );
  const depth = await waitFor('billing_queue_depth to count the 7 jobs', async () =>
    sample((await scrape()).body, 'billing_queue_depth{task="billing/credit"}') === 7 ? 7 : undefined,
  );
  t.equal(depth, 7);
  const refreshed = sample((await scrape()).body, 'billing_database_gauges_refreshed_timestamp_seconds')!;
  t.ok(refreshed > Date.now() / 1000 - 60, 'the time of the last refresh is exported');
});

t.test(
  '32 concurrent scrapes while the jobs table is locked: every one answers, no ledger session waits',
  async (t) => {
    // Whatever reads the queue now waits for this lock: a scrape that read it would not answer,
    // and the ledger session it used would show up waiting.
    const locker = new pg.Client({ connectionString: database.url });
    await locker.connect();
    t.teardown(() => locker.end());
    await locker.query('begin');
    await locker.query('lock table graphile_worker._private_jobs in access exclusive mode');
    let answered = 0;
    const scrapes = Array.from({ length: 32 }, () =>
      scrape().then((response) => {
        answered += 1;
        return response;
      }),
    );
    const outcome = await waitFor('the scrapes to answer, or a ledger session to wait on the lock', async () => {
      if (answered === scrapes.length) return 'every scrape answered';
      const { rows } = await database.query<{ waiting: bigint }>(
        `select count(*) as waiting from pg_stat_activity
       where datname = current_database() and application_name = 'pg-billing-worker' and wait_event_type = 'Lock'`,
      );
      return rows[0]!.waiting > 0n ? `${rows[0]!.waiting} ledger sessions wait on the lock` : undefined;
    });
    t.equal(outcome, 'every scrape answered');
    for (const response of await Promise.all(scrapes)) {
      t.equal(response.status, 200);
      t.equal(sample(response.body, 'billing_queue_depth{task="billing/credit"}'), 7, 'with the last value read');
    }
    await locker.query('rollback');
  },
);
