import type pg from 'pg';
import { holdExpiry } from '../../commands/contract.ts';

/**
 * A hold's expiry must commit within 5 s of its due time (docs/guarantees.md, expiries on time),
 * faults included. When an expiry job fails (its batch hit a lost connection, a PostgreSQL restart,
 * a deadlock), graphile-worker schedules the retry with an exponential backoff: e^1, e^2, e^3 ...
 * seconds, 30 s after three failures. Expiry jobs that failed and wait for such a retry are made
 * due again now, so they are retried at the reaper's pace (every BILLING_RECOVERY_INTERVAL_MS)
 * instead. Commands keep graphile-worker's backoff: no time bound is promised for them, and a fault
 * that repeats should not be hammered. An expiry that keeps failing still runs out of attempts, and
 * `billing verify` reports it.
 */
export async function retryFailedExpiriesNow(client: pg.PoolClient): Promise<number> {
  const { rowCount } = await client.query(retryFailedExpiriesStatement, [holdExpiry.task]);
  return rowCount ?? 0;
}

// graphile-worker's reschedule_jobs would wait for each row lock in turn; like the reaper (see
// reaper.ts), this never waits for a job row: one that is locked right now is skipped this pass.
// The due rows are locked once, as an array, then updated by id (reaper.ts says why not a join).
export const retryFailedExpiriesStatement = `
  update graphile_worker._private_jobs as jobs set run_at = now(), updated_at = now()
  where jobs.id = any(array(
    select j.id from graphile_worker._private_jobs j
    join graphile_worker._private_tasks t on t.id = j.task_id
    where t.identifier = $1 and j.attempts > 0 and j.attempts < j.max_attempts
      and j.locked_at is null and j.run_at > now() + interval '1 second'
    for update of j skip locked))`;
