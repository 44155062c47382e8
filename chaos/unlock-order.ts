// Why the reaper never waits for a job row (src/worker/recovery/reaper.ts), shown on real PostgreSQL:
// `node chaos/unlock-order.ts [rounds]`. Each round locks 3,000 jobs under a dead worker id, then runs
// two statements at once on them: graphile-worker's batchFailJobs SQL (what a runner that lost
// PostgreSQL in a restart sends for its in-flight jobs: rows in the order the jobs failed) and an
// unlock, first graphile-worker's force_unlock_workers (the old reaper: sequential-scan order, waits
// for each row) and then the reaper's skip-locked update. It prints how many rounds deadlocked.
import { HostClient } from '../src/db/hosts.ts';
import { createTestDatabase } from '../test/helpers/database.ts';

const rounds = Number(process.argv[2] ?? 30);
const unlocks = {
  force_unlock_workers: `select graphile_worker.force_unlock_workers(array['dead'])`,
  'reaper (skip locked)': `update graphile_worker._private_jobs as jobs set locked_at = null, locked_by = null
    from (select id from graphile_worker._private_jobs where locked_by = 'dead' for update skip locked) as free
    where jobs.id = free.id`,
};
// graphile-worker 0.18, dist/sql/failJobs.js (batchFailJobs, jobs without a named queue).
const batchFailJobs = `update graphile_worker._private_jobs as jobs
  set last_error = (el->>'message'), locked_by = null, locked_at = null
  from json_array_elements($2::json) as els(el)
  where id = (el->>'jobId')::bigint and locked_by = $1::text`;

const database = await createTestDatabase('unlock_order');
const shuffle = <T>(items: T[]) =>
  items
    .map((item) => [Math.random(), item] as const)
    .sort()
    .map(([, item]) => item);
try {
  const { rows } = await database.query<{ id: bigint }>(
    `select (graphile_worker.add_job('unlock-order/never-run', json_build_object('n', n))).id
     from generate_series(1, 3000) as n`,
  );
  const ids = rows.map((row) => String(row.id));
  const [reaper, runner] = [new HostClient(database.url), new HostClient(database.url)];
  await Promise.all([reaper.connect(), runner.connect()]);
  for (const [name, unlock] of Object.entries(unlocks)) {
    let deadlocked = 0;
    for (let round = 0; round < rounds; round++) {
      await database.query(
        `update graphile_worker._private_jobs set locked_by = 'dead', locked_at = now() where id = any($1::bigint[])`,
        [ids],
      );
      const failed = JSON.stringify(shuffle(ids).map((jobId) => ({ jobId, message: 'connection lost' })));
      const outcomes = await Promise.allSettled([reaper.query(unlock), runner.query(batchFailJobs, ['dead', failed])]);
      if (outcomes.some((o) => o.status === 'rejected' && /deadlock/.test(String(o.reason)))) deadlocked += 1;
    }
    console.log(`${name}: ${deadlocked} of ${rounds} rounds deadlocked`);
  }
  await Promise.all([reaper.end(), runner.end()]);
} finally {
  await database.drop();
}
