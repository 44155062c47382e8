import type pg from 'pg';
import { HostClient } from '../db/hosts.ts';
import type {} from 'graphile-worker';
import type { Config } from '../config.ts';
import { queuePoolTypes } from './queue-pool-types.ts';
import { workerSessionOptions } from './runtime.ts';

export interface QueueSettings {
  concurrency: number;
  /** Jobs one fetch asks for (graphile-worker's local queue size). */
  fetchSize: number;
  /** The pool graphile-worker fetches and completes jobs on (and the reaper unlocks them on). */
  pool: pg.PoolConfig;
  preset: { worker: GraphileConfig.WorkerOptions };
}

/**
 * graphile-worker settings of a billing worker, shared with the bench's queue ceiling so that
 * it measures the queue exactly as the service runs it. Chosen by measurement (docs/performance.md).
 */
export function queueSettings(config: Config): QueueSettings {
  // One connection per fetch/complete batch in flight plus the reaper and liveness; the ledger pool
  // is separate.
  const maxPoolSize = Math.max(10, Math.ceil(config.concurrency / 20) + 4);
  const fetchSize = 3 * config.concurrency;
  return {
    concurrency: config.concurrency,
    fetchSize,
    pool: {
      connectionString: config.databaseUrl,
      // graphile-worker's connections and its LISTEN go where the URL says (src/db/hosts.ts).
      Client: HostClient,
      max: maxPoolSize,
      application_name: 'pg-billing-queue',
      // graphile-worker sends get_jobs and complete_jobs as named prepared statements. After five
      // runs PostgreSQL may keep a generic plan made while the jobs table was empty (a quiet queue
      // between bursts): a nested loop that scans the whole table once per fetched job. Measured
      // in the bench's hot phase: one fetch of 1,200 took 3-16 s instead of ~20 ms, long enough
      // for the other worker's completion to hit lock_timeout and its runner to shut down. Planned
      // afresh, but on statistics taken while the queue was empty, a fetch from 1,000,000 queued
      // jobs was a scan and sort of all of them (0.7-0.8 s) instead of the ordered scan of
      // jobs_main_index (20 ms). Every statement here reaches jobs by an index: sequential scans
      // are ruled out (docs/performance.md). jit=off comes with workerSessionOptions.
      options: `${workerSessionOptions(config)} -c plan_cache_mode=force_custom_plan -c enable_seqscan=off`,
      // Payloads reach the tasks as JSON text judged before parsing, numbers as written.
      types: queuePoolTypes,
    },
    preset: {
      worker: {
        maxPoolSize,
        pollInterval: 1000,
        // Jobs are fetched in bulk and handed to the batcher without a round trip each. Three
        // times the concurrency: get_jobs is most of graphile-worker's cost in PostgreSQL, and a
        // fetch of 600 instead of 200 cut its CPU per job from ~250 to ~120 us (docs/
        // performance.md). The extra jobs wait locked in this process; a graceful stop returns
        // them, a killed worker's go back through the dead-worker reaper like its running ones.
        localQueue: { size: fetchSize },
        // Completions are batched with no delay; with the default (-1) a job that finishes during a
        // graceful shutdown stays locked (measured on graphile-worker 0.18.0).
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0,
      },
    },
  };
}
