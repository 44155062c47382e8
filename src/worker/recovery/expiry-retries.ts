import type pg from 'pg';
import { expiryTask } from '../../commands/contract.ts';

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
  const { rows } = await client.query<{ count: string }>(
    `select count(*) as count from graphile_worker.reschedule_jobs(
       array(select id from graphile_worker.jobs
             where task_identifier = $1 and attempts > 0 and attempts < max_attempts
               and locked_at is null and run_at > now() + interval '1 second'),
       run_at => now())`,
    [expiryTask],
  );
  return Number(rows[0]?.count ?? 0);
}
