import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { declarations, taskNames } from '../commands/command.ts';
import { holdExpiry, type ResultCode } from '../commands/contract.ts';
import { serviceVersion } from '../version.ts';
import { errorCode, isTransientError } from '../db/errors.ts';

/** Prometheus metrics of one worker process, served on /metrics (docs/operations.md: Metrics). */
export interface Metrics {
  registry: Registry;
  commands: Counter<'type' | 'code'>;
  idConflicts: Counter<'type'>;
  latency: Histogram<'type'>;
  retries: Counter<'task'>;
  errors: Counter<'kind' | 'code'>;
  batchSize: Histogram;
  batchSeconds: Histogram<'outcome'>;
  queueDepth: Gauge<'task'>;
  /** Age of the oldest job that could run now and waits: the queue's backlog in time. */
  oldestWaitingSeconds: Gauge;
  /** When the gauges read from the database were last all refreshed (src/worker/database-gauges.ts). */
  gaugesRefreshed: Gauge;
  /** Jobs handed back from dead workers by this process's reaper (they then run elsewhere or here). */
  jobsReclaimed: Counter;
  /** Jobs graphile-worker gave up on (max attempts reached): each needs a human. */
  jobsFailed: Counter<'task'>;
  /** Queue runners this process replaced: the database went away, or graphile-worker shut one down. */
  runnerRestarts: Counter;
  /** PostgreSQL's NOTIFY queue, used fraction (0-1), as the watchdog last read it. */
  notifyQueueUsage: Gauge;
  /** Client and reader sessions the watchdog ended because they pinned a filling NOTIFY queue. */
  notifySessionsEnded: Counter;
  /** Job fetches (graphile-worker's get_jobs) this process ran. */
  queueFetches: Counter;
  /** Jobs taken ahead of the fetched ones this process held, by a lower priority (src/worker/fair-fetch.ts). */
  queueJobsAhead: Counter;
  /** `jobs:insert` notifications: passed on as a wake-up, or folded into one already due. */
  queueWakeups: Counter<'outcome'>;
  /** The PostgreSQL server (host:port) this worker's connections go to now: one series at 1. */
  databaseHost: Gauge<'host'>;
  /** Times this worker's connections moved to another server of DATABASE_URL (failovers seen). */
  databaseHostChanges: Counter;
  observeBatch(size: number, durationMs: number, error?: unknown): void;
}

/**
 * The result codes each operation can end with (its declaration's codes), so that every series a
 * dashboard or an alert reads exists at 0 from the start: `rate()` and `absent()` work on a fresh worker.
 */
const everyCommandCanEnd: readonly ResultCode[] = ['ok', 'invalid_command', 'id_conflict'];

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const buildInfo = new Gauge({
    name: 'billing_build_info',
    help: 'Always 1; the labels say which build runs (join on instance)',
    labelNames: ['version', 'node_version'] as const,
    registers: [registry],
  });
  buildInfo.set({ version: serviceVersion, node_version: process.version }, 1);
  const metrics: Omit<Metrics, 'observeBatch'> = {
    registry,
    commands: new Counter({
      name: 'billing_commands_total',
      help: 'Commands that got their result, by type and result code',
      labelNames: ['type', 'code'] as const,
      registers: [registry],
    }),
    idConflicts: new Counter({
      name: 'billing_id_conflicts_total',
      help: 'Command ids reused with another payload',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    latency: new Histogram({
      name: 'billing_command_latency_seconds',
      help: 'From enqueue (job created_at) to committed result',
      labelNames: ['type'] as const,
      registers: [registry],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    }),
    retries: new Counter({
      name: 'billing_job_retries_total',
      help: 'Jobs run again after a failed attempt',
      labelNames: ['task'] as const,
      registers: [registry],
    }),
    errors: new Counter({
      name: 'billing_errors_total',
      help: 'Failed attempts, transient (retried) or not (retried, and logged as errors)',
      labelNames: ['kind', 'code'] as const,
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'billing_batch_commands',
      help: 'Commands per group-commit transaction',
      registers: [registry],
      buckets: [1, 2, 5, 10, 25, 50, 100, 200, 500, 1000],
    }),
    batchSeconds: new Histogram({
      name: 'billing_batch_seconds',
      help: 'Duration of a group-commit transaction',
      labelNames: ['outcome'] as const,
      registers: [registry],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    }),
    queueDepth: new Gauge({
      name: 'billing_queue_depth',
      help: 'Jobs waiting per billing task, in the whole database (every replica reports the same: use max(), not sum())',
      labelNames: ['task'] as const,
      registers: [registry],
    }),
    oldestWaitingSeconds: new Gauge({
      name: 'billing_oldest_waiting_job_seconds',
      help: 'Age of the oldest billing job due and not taken, in the whole database (0 when none; use max() across replicas)',
      registers: [registry],
    }),
    gaugesRefreshed: new Gauge({
      name: 'billing_database_gauges_refreshed_timestamp_seconds',
      help: 'When the gauges read from the database (queue depth, oldest waiting job) were last refreshed: they are read every BILLING_METRICS_INTERVAL_MS, not per scrape (0: never yet)',
      registers: [registry],
    }),
    jobsReclaimed: new Counter({
      name: 'billing_jobs_reclaimed_total',
      help: 'Jobs locked by dead workers that this worker handed back to the queue',
      registers: [registry],
    }),
    jobsFailed: new Counter({
      name: 'billing_jobs_failed_total',
      help: 'Jobs that failed for good (max attempts reached): they stay in graphile_worker.jobs',
      labelNames: ['task'] as const,
      registers: [registry],
    }),
    runnerRestarts: new Counter({
      name: 'billing_runner_restarts_total',
      help: 'Fresh queue runners started after losing the database (a PostgreSQL restart)',
      registers: [registry],
    }),
    notifyQueueUsage: new Gauge({
      name: 'billing_notify_queue_usage_ratio',
      help: "PostgreSQL's NOTIFY queue, fraction used (0-1; the whole server, use max() across replicas). Alert above 0.05",
      registers: [registry],
    }),
    notifySessionsEnded: new Counter({
      name: 'billing_notify_sessions_ended_total',
      help: 'Client and reader sessions ended by the watchdog because they pinned a filling NOTIFY queue',
      registers: [registry],
    }),
    queueFetches: new Counter({
      name: 'billing_queue_fetches_total',
      help: 'Job fetches (graphile-worker get_jobs) run by this worker',
      registers: [registry],
    }),
    queueJobsAhead: new Counter({
      name: 'billing_queue_jobs_taken_ahead_total',
      help: "Jobs this worker took ahead of the fetched jobs it held, because they ranked ahead (another login's, with a smaller backlog)",
      registers: [registry],
    }),
    queueWakeups: new Counter({
      name: 'billing_queue_wakeups_total',
      help: 'jobs:insert notifications: passed on to the fetcher (forwarded) or folded into a wake-up already due (coalesced)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    databaseHost: new Gauge({
      name: 'billing_database_host',
      help: 'Always 1, on the host:port of DATABASE_URL this worker connects to now (several hosts: the primary)',
      labelNames: ['host'] as const,
      registers: [registry],
    }),
    databaseHostChanges: new Counter({
      name: 'billing_database_host_changes_total',
      help: 'Times the connections moved to another host of DATABASE_URL: failovers seen by this worker',
      registers: [registry],
    }),
  };
  for (const outcome of ['forwarded', 'coalesced']) metrics.queueWakeups.inc({ outcome }, 0);
  for (const { type, codes } of declarations) {
    // The service's own expiry is never refused: it applies, or is skipped and writes no result.
    const isExpiry = type === holdExpiry.type;
    metrics.latency.zero({ type });
    for (const code of isExpiry ? ['ok' as const] : [...everyCommandCanEnd, ...codes])
      metrics.commands.inc({ type, code }, 0);
    if (!isExpiry) metrics.idConflicts.inc({ type }, 0);
  }
  for (const task of taskNames) {
    metrics.retries.inc({ task }, 0);
    metrics.jobsFailed.inc({ task }, 0);
    metrics.queueDepth.set({ task }, 0);
  }
  for (const outcome of ['committed', 'failed']) metrics.batchSeconds.zero({ outcome });
  return {
    ...metrics,
    observeBatch(size, durationMs, error) {
      metrics.batchSize.observe(size);
      metrics.batchSeconds.observe({ outcome: error ? 'failed' : 'committed' }, durationMs / 1000);
      if (error) metrics.errors.inc({ kind: isTransientError(error) ? 'transient' : 'fault', code: errorCode(error) });
    },
  };
}
