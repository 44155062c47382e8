import t from 'tap';
import { holdExpiry } from '../src/commands/contract.ts';
import { startDeadWorkerReaper } from '../src/worker/recovery/reaper.ts';
import { createTestDatabase } from './helpers/database.ts';

// The reaper never waits for a job row. graphile-worker's force_unlock_workers would: it locks the
// dead id's rows in the order of a sequential scan, while the runner that lost PostgreSQL in a
// restart may be returning or failing the same jobs in another order, and that pair can deadlock
// (one chaos run in 40 did). Here a session holds a row lock on one of a dead worker's jobs and on
// one failed expiry job, and never lets go until the test says so: a pass that waited would hang.

const database = await createTestDatabase('reaper');
t.teardown(() => database.drop());

const logger = { info: () => {}, warn: () => {}, error: () => {} };
const passDeadlineMs = 10_000;

async function lockedBy(ids: string[]): Promise<(string | null)[]> {
  const { rows } = await database.query<{ locked_by: string | null }>(
    'select locked_by from graphile_worker._private_jobs where id = any($1::bigint[]) order by id',
    [ids],
  );
  return rows.map((row) => row.locked_by);
}

t.test('a pass skips the job rows another session has locked, and the next pass takes them', async (t) => {
  const deadId = `worker-reaper-test-${process.pid}`;
  const { rows: jobs } = await database.query<{ id: string }>(
    `select (graphile_worker.add_job('reaper-test/never-run', json_build_object('n', n))).id
     from generate_series(1, 5) as n`,
  );
  const ids = jobs.map((job) => job.id);
  // Registered by a session that is gone, and holding all five jobs (one statement, as a worker
  // registers before it locks anything).
  await database.query(
    `with registered as (
       insert into billing.worker_liveness (id, backend_pid, backend_start, os_pid, host)
       values ($1, 0, '-infinity', 0, 'gone') returning id)
     update graphile_worker._private_jobs set locked_by = (select id from registered), locked_at = now()
     where id = any($2::bigint[])`,
    [deadId, ids],
  );
  // An expiry job that failed once and waits out its backoff: the pass makes it due now.
  const { rows: expiry } = await database.query<{ id: string }>(
    `select (graphile_worker.add_job($1, '{"hold":"reaper-test"}', run_at => now() + interval '1 hour')).id`,
    [holdExpiry.task],
  );
  const expiryId = expiry[0]!.id;
  await database.query('update graphile_worker._private_jobs set attempts = 1 where id = $1', [expiryId]);

  const holder = await database.pool.connect();
  t.teardown(() => holder.release());
  await holder.query('begin');
  await holder.query('select id from graphile_worker._private_jobs where id = any($1::bigint[]) for update', [
    [ids[2], expiryId],
  ]);

  const reaper = startDeadWorkerReaper({ pgPool: database.pool, intervalMs: 3_600_000, logger });
  await reaper.stop(); // only the passes this test runs
  const first = await Promise.race([
    reaper.runOnce(),
    new Promise<'waited'>((resolve) => setTimeout(() => resolve('waited'), passDeadlineMs).unref()),
  ]);
  t.not(first, 'waited', `the pass ends while a row stays locked (deadline ${passDeadlineMs} ms)`);
  if (first === 'waited') return;
  t.same(first.dead, [deadId]);
  t.equal(first.unlockedJobs, 4, 'the four free jobs are unlocked');
  t.same(await lockedBy(ids), [null, null, deadId, null, null], 'the locked one is left as it was');
  const registration = await database.query('select 1 from billing.worker_liveness where id = $1', [deadId]);
  t.equal(registration.rowCount, 1, 'the dead id stays registered while it still holds a job');
  const waiting = await database.query<{ later: boolean }>(
    `select run_at > now() + interval '1 minute' as later from graphile_worker._private_jobs where id = $1`,
    [expiryId],
  );
  t.equal(waiting.rows[0]!.later, true, 'the locked expiry job keeps its backoff this pass');

  await holder.query('rollback');
  const second = await reaper.runOnce();
  t.equal(second.unlockedJobs, 1, 'the next pass unlocks the last one');
  t.same(await lockedBy(ids), [null, null, null, null, null]);
  const gone = await database.query('select 1 from billing.worker_liveness where id = $1', [deadId]);
  t.equal(gone.rowCount, 0, 'and drops the registration with its last job');
  const due = await database.query<{ due: boolean }>(
    'select run_at <= now() as due from graphile_worker._private_jobs where id = $1',
    [expiryId],
  );
  t.equal(due.rows[0]!.due, true, 'the failed expiry job is due now');
});
