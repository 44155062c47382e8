import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { errorCode, isTransientError } from './errors.ts';

/** Prometheus metrics of one worker process, served on /metrics. */
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
  observeBatch(size: number, durationMs: number, error?: unknown): void;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const metrics: Omit<Metrics, 'observeBatch'> = {
    registry,
    commands: new Counter({
      name: 'billing_commands_total', help: 'Commands that got their result, by type and result code',
      labelNames: ['type', 'code'] as const, registers: [registry],
    }),
    idConflicts: new Counter({
      name: 'billing_id_conflicts_total', help: 'Command ids reused with another payload',
      labelNames: ['type'] as const, registers: [registry],
    }),
    latency: new Histogram({
      name: 'billing_command_latency_seconds', help: 'From enqueue (job created_at) to committed result',
      labelNames: ['type'] as const, registers: [registry],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    }),
    retries: new Counter({
      name: 'billing_job_retries_total', help: 'Jobs run again after a failed attempt',
      labelNames: ['task'] as const, registers: [registry],
    }),
    errors: new Counter({
      name: 'billing_errors_total', help: 'Failed attempts, transient (retried) or not (retried, and logged as errors)',
      labelNames: ['kind', 'code'] as const, registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'billing_batch_commands', help: 'Commands per group-commit transaction', registers: [registry],
      buckets: [1, 2, 5, 10, 25, 50, 100, 200, 500, 1000],
    }),
    batchSeconds: new Histogram({
      name: 'billing_batch_seconds', help: 'Duration of a group-commit transaction',
      labelNames: ['outcome'] as const, registers: [registry],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    }),
    queueDepth: new Gauge({
      name: 'billing_queue_depth', help: 'Jobs waiting per billing task (unknown billing/ names included)',
      labelNames: ['task'] as const, registers: [registry],
    }),
  };
  return {
    ...metrics,
    observeBatch(size, durationMs, error) {
      metrics.batchSize.observe(size);
      metrics.batchSeconds.observe({ outcome: error ? 'failed' : 'committed' }, durationMs / 1000);
      if (error) metrics.errors.inc({ kind: isTransientError(error) ? 'transient' : 'fault', code: errorCode(error) });
    },
  };
}
