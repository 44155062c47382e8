import type pg from 'pg';
import { pickDeadIds, UNREGISTERED_GRACE_MS, type DeadIdDecision, type RegistrationState } from './dead-ids.ts';
import { retryFailedExpiriesNow } from './expiry-retries.ts';
import type { RecoveryLogger } from './registration.ts';
import { runPeriodically } from '../periodic.ts';

export interface ReapResult extends DeadIdDecision {
  /** Jobs that were locked by the unlocked ids (as seen just before unlocking). */
  unlockedJobs: number;
}

export interface DeadWorkerReaper {
  stop(): Promise<void>;
  /** One pass now (also what the timer runs). */
  runOnce(): Promise<ReapResult>;
}

/**
 * Every `intervalMs`: lists the distinct `locked_by` of the public `graphile_worker.jobs` view,
 * asks `billing.worker_liveness_sessions()` whether each registered id's session is still in
 * pg_stat_activity, and hands the jobs of dead ids back with the public
 * `graphile_worker.force_unlock_workers(text[])`, then wakes idle workers with graphile-worker's
 * own `jobs:insert` notification. Takes no lock a client could hold against it.
 */
export function startDeadWorkerReaper(options: {
  pgPool: pg.Pool;
  intervalMs: number;
  logger: RecoveryLogger;
  onRecovered?: (result: ReapResult) => void;
}): DeadWorkerReaper {
  const { pgPool, logger, intervalMs } = options;
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
      const unlockedJobs = lockers.filter((l) => toUnlock.includes(l.lockedBy)).reduce((n, l) => n + l.jobs, 0);
      if (toUnlock.length > 0) {
        await client.query('begin');
        try {
          await client.query('select graphile_worker.force_unlock_workers($1::text[])', [toUnlock]);
          if (decision.dead.length > 0)
            await client.query('delete from billing.worker_liveness where id = any($1::text[])', [decision.dead]);
          if (unlockedJobs > 0) {
            await client.query(
              `select pg_notify('jobs:insert', json_build_object('r', random(), 'count', $1::int)::text)`,
              [unlockedJobs],
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
