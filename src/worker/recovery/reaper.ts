import type pg from 'pg';
import { pickDeadIds, UNREGISTERED_GRACE_MS, type DeadIdDecision, type RegistrationState } from './dead-ids.ts';
import { retryFailedExpiriesNow } from './expiry-retries.ts';
import type { RecoveryLogger } from './registration.ts';
import { runPeriodically } from '../periodic.ts';

export interface ReapResult extends DeadIdDecision {
  /** Jobs this pass unlocked (rows locked by someone else at that moment are left for the next pass). */
  unlockedJobs: number;
}

// The rows are locked (skipping those locked by others) in a subquery that runs once, as an array,
// and then updated by id. Joined instead (`update ... from (select ...) where id = ...`), the plan
// depends on the jobs table's statistics: taken while the queue was empty (a quiet moment's
// ANALYZE), they made PostgreSQL rescan the whole table for every row of it, a nested loop that ran
// 30 s with 37,000 jobs queued (bench/LOG.md).
export const unlockJobsSkippingLocked = `
  update graphile_worker._private_jobs as jobs set locked_at = null, locked_by = null
  where jobs.id = any(array(
    select id from graphile_worker._private_jobs where locked_by = any($1::text[]) for update skip locked))`;
export const unlockQueuesSkippingLocked = `
  update graphile_worker._private_job_queues as queues set locked_at = null, locked_by = null
  where queues.id = any(array(
    select id from graphile_worker._private_job_queues where locked_by = any($1::text[]) for update skip locked))`;
/** A dead id's row goes with its last job: while it still locks one, the next pass must know it is dead. */
const deleteEmptyRegistrations = `
  delete from billing.worker_liveness r where r.id = any($1::text[])
  and not exists (select 1 from graphile_worker._private_jobs j where j.locked_by = r.id)
  and not exists (select 1 from graphile_worker._private_job_queues q where q.locked_by = r.id)`;

export interface DeadWorkerReaper {
  stop(): Promise<void>;
  /** One pass now (also what the timer runs). */
  runOnce(): Promise<ReapResult>;
}

/**
 * Every `intervalMs`: lists the distinct `locked_by` of the public `graphile_worker.jobs` view,
 * asks `billing.worker_liveness_sessions()` whether each registered id's session is still in
 * pg_stat_activity, hands the jobs of dead ids back (what graphile-worker's `force_unlock_workers`
 * does, but skipping rows that someone else has locked), then wakes idle workers with
 * graphile-worker's own `jobs:insert` notification. Takes no lock a client could hold against it.
 *
 * Why not `force_unlock_workers` itself: it updates the rows in the order of a sequential scan
 * and waits for each row lock. The runner that lost its database after a PostgreSQL restart may
 * at the same moment return or fail those very jobs, in id order or in the order they finished,
 * and two statements that lock the same rows in different orders can deadlock (one chaos run in
 * 40 did). A reaper that never waits for a job row is never part of a cycle; a row it skipped is
 * being handed back by its holder or is unlocked on the next pass, and the dead id's registration
 * stays until none of its jobs is left.
 */
export function startDeadWorkerReaper(options: {
  pgPool: pg.Pool;
  intervalMs: number;
  logger: RecoveryLogger;
  onRecovered?: (result: ReapResult) => void;
  /** NOTIFY-queue usage (0-1) from which no wake-up is sent (BILLING_NOTIFY_QUEUE_LIMIT_PERCENT). */
  notifyQueueLimit?: number;
}): DeadWorkerReaper {
  const { pgPool, logger, intervalMs } = options;
  const notifyQueueLimit = options.notifyQueueLimit ?? 0.5;
  const reported = new Set<string>();

  const pass = async (): Promise<ReapResult> => {
    const client = await pgPool.connect();
    let broken: Error | undefined;
    try {
      // Lockers first: an id is registered before it can lock a job, so every locker read here
      // has its row in the registrations read next.
      const lockers = (
        await client.query<{ locked_by: string; oldest: Date; jobs: string }>(
          `select locked_by, min(locked_at) as oldest, count(*) as jobs
           from graphile_worker.jobs where locked_by is not null group by locked_by`,
        )
      ).rows.map((r) => ({ lockedBy: r.locked_by, oldestLockedAt: r.oldest, jobs: Number(r.jobs) }));
      // Every registered row, not only those holding jobs: a dead id may still lock a named queue
      // (job_queues is not in the public view) and its row must be collected anyway.
      const registrations = (
        await client.query<RegistrationState>('select id, session from billing.worker_liveness_sessions()')
      ).rows;
      const decision = pickDeadIds({ lockers, registrations, now: new Date() });
      const toUnlock = [...decision.dead, ...decision.expiredUnregistered];
      let unlockedJobs = 0;
      if (toUnlock.length > 0) {
        await client.query('begin');
        try {
          unlockedJobs = (await client.query(unlockJobsSkippingLocked, [toUnlock])).rowCount ?? 0;
          await client.query(unlockQueuesSkippingLocked, [toUnlock]);
          if (decision.dead.length > 0) await client.query(deleteEmptyRegistrations, [decision.dead]);
          // Only a wake-up (workers poll anyway): never sent into a (nearly) full NOTIFY queue,
          // where it would fail this commit and leave the dead worker's jobs locked.
          if (unlockedJobs > 0) {
            await client.query(
              `select pg_notify('jobs:insert', json_build_object('r', random(), 'count', $1::int)::text)
               where pg_notification_queue_usage() < $2::float8`,
              [unlockedJobs, notifyQueueLimit],
            );
          }
          await client.query('commit');
        } catch (err) {
          await client.query('rollback').catch(() => {});
          throw err;
        }
      }
      const expiriesRetried = await retryFailedExpiriesNow(client);
      if (expiriesRetried > 0)
        logger.info({ jobs: expiriesRetried }, 'failed hold expiries retried now, not after the backoff');
      const newUnknown = decision.unknown.filter((id) => !reported.has(id));
      if (newUnknown.length > 0) {
        for (const id of newUnknown) reported.add(id);
        // A process without registration (plain graphile-worker, older build), or a session whose
        // backend_start we may not see: we cannot tell whether it is alive, so its jobs wait.
        logger.warn(
          { ids: newUnknown, graceMs: UNREGISTERED_GRACE_MS },
          'jobs locked by worker ids we cannot judge; left alone',
        );
      }
      if (toUnlock.length > 0) logger.warn({ ...decision, unlockedJobs }, 'unlocked the jobs of dead workers');
      const result = { ...decision, unlockedJobs };
      if (unlockedJobs > 0) options.onRecovered?.(result);
      return result;
    } catch (err) {
      broken = err as Error;
      throw err;
    } finally {
      client.release(broken);
    }
  };

  const periodic = runPeriodically(pass, {
    intervalMs,
    firstAfterMs: Math.min(intervalMs, 250),
    onError: (err) => logger.error({ err }, 'dead-worker reaper pass failed'),
  });
  return { runOnce: pass, stop: () => periodic.stop() };
}
