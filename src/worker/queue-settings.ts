import type pg from 'pg';
import { HostClient } from '../db/hosts.ts';
import type {} from 'graphile-worker';
import type { Config } from '../config.ts';
import { queuePayloadParser } from './queue-payload-parser.ts';
import { workerSessionOptions } from './runtime.ts';

/** How long, on average, a worker whose fetch found nothing ignores new-job notifications. */
export const refetchDelayMs = 50;

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
 * it measures the queue exactly as the service runs it. Chosen by measurement (bench/LOG.md).
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
      // graphile-worker sends get_jobs and complete_jobs as named prepared statements. A generic
      // plan made while the jobs table was empty (a quiet queue between bursts) scans the whole
      // table once per fetched job, long enough for another worker's completion to hit
      // lock_timeout: plans are custom. A custom plan on statistics taken while the queue was empty
      // can still scan and sort every queued job: every statement here reaches jobs by an index,
      // so sequential scans are ruled out (figures: bench/LOG.md). jit=off comes with
      // workerSessionOptions.
      options: `${workerSessionOptions(config)} -c plan_cache_mode=force_custom_plan -c enable_seqscan=off`,
      // Payloads reach the tasks as JSON text judged before parsing, numbers as written.
      types: queuePayloadParser,
    },
    preset: {
      worker: {
        maxPoolSize,
        pollInterval: 1000,
        // Jobs are fetched in bulk and handed to the batcher without a round trip each. Three
        // times the concurrency: get_jobs is most of graphile-worker's cost in PostgreSQL, and a
        // fetch of 600 instead of 200 cut its CPU per job from ~250 to ~120 us (bench/
        // LOG.md). The extra jobs wait locked in this process (in priority order, and another
        // login's jobs that rank ahead are taken ahead of them: fair-fetch.ts); a graceful stop returns
        // them, a killed worker's go back through the dead-worker reaper like its running ones.
        // Each add_jobs wakes every worker (jobs:insert) and each fetches; one fetch takes the lot and
        // the other finds nothing: half the fetches at moderate load were empty. A worker whose fetch
        // found nothing sits out new-job notifications for 25-75 ms (graphile-worker picks at random)
        // and then fetches if any came. Only an empty fetch waits: a worker that got jobs fetches
        // again at the next notification, so a steady stream always has a worker listening. With
        // two workers and an add_jobs every 10 ms: 1.35-1.41 fetches per call instead of 2.0, 27-30%
        // of them empty instead of 50%, and pickup latency unchanged within noise (bench/LOG.md).
        localQueue: { size: fetchSize, refetchDelay: { durationMs: refetchDelayMs, threshold: 0 } },
        // Completions are batched with no delay; with the default (-1) a job that finishes during a
        // graceful shutdown stays locked (measured on graphile-worker 0.18.0).
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0,
      },
    },
  };
}
