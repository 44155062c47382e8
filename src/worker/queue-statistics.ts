import type { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { Logger } from '../logger.ts';
import { describeError } from './describe-error.ts';

/**
 * A full fetch while the jobs table's statistics say it is (nearly) empty: the next fetches would
 * be planned as a full scan of the table per fetched row (sql/0014_queue_statistics.sql), so the
 * statistics are refreshed. At most one call a second, none once `active()` says the runner is
 * stopping or lost. `onFetch` is told of every fetch (the fetch counter).
 */
export function refreshStatisticsOnFullFetch(
  events: EventEmitter,
  options: { queuePool: pg.Pool; fetchSize: number; logger: Logger; active: () => boolean; onFetch: () => void },
): void {
  const { queuePool, fetchSize, logger } = options;
  let checkedAt = 0;
  events.on('localQueue:getJobs:complete', ({ jobs }: { jobs: unknown[] }) => {
    options.onFetch();
    const now = Date.now();
    if (jobs.length < fetchSize || !options.active() || now - checkedAt < 1_000) return;
    checkedAt = now;
    queuePool
      .query<{ analyzed: boolean }>('select billing.refresh_queue_statistics($1) as analyzed', [jobs.length])
      .then(({ rows }) => {
        if (rows[0]?.analyzed) logger.info({ jobs_fetched: jobs.length }, 'jobs table statistics were stale: analyzed');
      })
      .catch((error: unknown) =>
        logger.warn({ error: describeError(error) }, 'could not refresh the jobs table statistics'),
      );
  });
}
