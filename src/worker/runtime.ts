import type pg from 'pg';
import type { Config } from '../config.ts';
import { createKysely, type BillingDb } from '../db/kysely.ts';
import { createPool } from '../db/pool.ts';
import { applyBatch } from '../ledger/apply.ts';
import type { Logger } from '../logger.ts';
import { CommandBatcher } from './batcher.ts';
import { ByteBudget } from './byte-budget.ts';
import { createMetrics, type Metrics } from './metrics.ts';

/**
 * What one worker process shares: one ledger pool, one batcher, one logger, one set of metrics.
 * startWorker makes it and hands it to what needs it (the command tasks, the expiry sweeper).
 */
export interface WorkerRuntime {
  config: Config;
  pool: pg.Pool;
  db: BillingDb;
  batcher: CommandBatcher;
  logger: Logger;
  metrics: Metrics;
  /** Bytes of payloads kept apart (sql/0028_large_payloads_apart.sql) that this process's tasks hold at once. */
  payloadBudget: ByteBudget;
  close(): Promise<void>;
}

/**
 * Most bytes of payloads kept apart that one process loads at once: 128 commands of 64 KiB, a few
 * times that in parsed objects, well inside the deployed 128 MB heap.
 */
export const payloadBudgetBytes = 8 * 1024 * 1024;

export function createRuntime(config: Config, logger: Logger): WorkerRuntime {
  if (!config.databaseUrl) throw new Error('DATABASE_URL is not set');
  const pool = createPool({
    connectionString: config.databaseUrl,
    max: config.poolSize,
    applicationName: 'pg-billing-worker',
    sessionOptions: workerSessionOptions(config),
    pipeline: true,
  });
  const db = createKysely(pool);
  const metrics = createMetrics();
  const batcher = new CommandBatcher({
    apply: (items) => applyBatch(pool, items, { notifyQueueLimit: config.notifyQueueLimit }),
    maxBatchSize: config.batchSize,
    maxConcurrentBatches: config.batchesInFlight,
    maxWaitMs: config.batchWaitMs,
    // Room for every batch in flight plus one filling: enough to keep group commit busy, small
    // enough that batch jobs of many commands cannot fill the heap.
    maxPending: config.batchSize * (config.batchesInFlight + 1),
    onBatch: (size, durationMs, error) => metrics.observeBatch(size, durationMs, error),
  });
  return {
    config,
    pool,
    db,
    batcher,
    logger,
    metrics,
    payloadBudget: new ByteBudget(payloadBudgetBytes),
    async close() {
      await db.destroy();
    },
  };
}

/**
 * Backend options of every worker connection (ledger and queue pools): a stuck command must not
 * stall the rest, so every statement, lock wait and idle transaction is bounded.
 */
export function workerSessionOptions(
  config: Pick<Config, 'statementTimeoutMs' | 'lockTimeoutMs' | 'idleInTransactionTimeoutMs'>,
): string {
  return [
    `-c statement_timeout=${config.statementTimeoutMs}`,
    `-c lock_timeout=${config.lockTimeoutMs}`,
    `-c idle_in_transaction_session_timeout=${config.idleInTransactionTimeoutMs}`,
    // JIT compiles a statement whose estimated cost passes jit_above_cost: never worth it for these
    // short statements, and it cost ~1 s per ledger batch once sequential scans are priced out
    // (src/ledger/apply.ts), or per fetch on a large queue.
    '-c jit=off',
  ].join(' ');
}
