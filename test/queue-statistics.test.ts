import t from 'tap';
import { createTestDatabase } from './helpers/database.ts';
import { waitFor } from './helpers/wait.ts';
import { startTestWorker } from './helpers/worker.ts';
import { enqueueMany } from './helpers/ledger.ts';

// Statistics of graphile-worker's jobs table taken while it was empty, with pages left behind, say
// it is empty however much it fills: every fetch is then planned as a scan of the whole table per
// fetched row (seconds per fetch in the bench; bench/LOG.md). A worker whose fetch comes
// back full has them refreshed (sql/0014_queue_statistics.sql).

t.test('a full fetch on statistics of an empty jobs table has them refreshed', async (t) => {
  const database = await createTestDatabase('queue-statistics');
  t.teardown(() => database.drop());
  const statistics = async () =>
    (
      await database.query<{ reltuples: number; relpages: number }>(
        `select reltuples, relpages from pg_class where oid = 'graphile_worker._private_jobs'::regclass`,
      )
    ).rows[0]!;
  // Autovacuum stays out of it: only the worker may refresh them here.
  await database.query('alter table graphile_worker._private_jobs set (autovacuum_enabled = false)');
  await enqueueMany(database, 'stats/filler', 5_000, `'{}'::json`);
  await database.query('delete from graphile_worker._private_jobs');
  await database.query('analyze graphile_worker._private_jobs');
  await enqueueMany(database, 'billing/credit', 5_000);
  const before = await statistics();
  t.equal(before.reltuples, 0, 'the statistics say the jobs table is empty');
  t.ok(before.relpages > 0, 'with pages left behind (so the planner trusts its density of 0)');

  const worker = await startTestWorker(database, { concurrency: 20 });
  t.teardown(() => worker.stop());
  const after = await waitFor('refreshed statistics', async () => {
    const now = await statistics();
    return now.reltuples >= 1000 ? now : undefined;
  });
  t.ok(after.reltuples >= 1000, `the statistics count the queued jobs again (${after.reltuples})`);
});
