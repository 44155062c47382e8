/**
 * Every setting comes from the environment (README: Configuration). Parsed once, checked, and
 * refused with a message that names the variable.
 */
export interface Config {
  databaseUrl: string | undefined;
  /** graphile-worker concurrentJobs: task invocations in flight per process. */
  concurrency: number;
  /** Commands per group-commit transaction. */
  batchSize: number;
  batchesInFlight: number;
  batchWaitMs: number;
  /** Connections of the ledger pool (graphile-worker has its own). */
  poolSize: number;
  defaultCurrency: string;
  httpPort: number;
  logLevel: string;
  statementTimeoutMs: number;
  lockTimeoutMs: number;
  idleInTransactionTimeoutMs: number;
  /** How often a worker looks for jobs locked by dead workers. */
  recoveryIntervalMs: number;
  /** Folder of the embedded PostgreSQL that `billing start` runs without DATABASE_URL (BILLING_DATA_DIR). */
  dataDir?: string | undefined;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return {
    databaseUrl: env.DATABASE_URL || undefined,
    concurrency: integer(env, 'BILLING_CONCURRENCY', 200, 1, 10_000),
    batchSize: integer(env, 'BILLING_BATCH_SIZE', 200, 1, 5_000),
    batchesInFlight: integer(env, 'BILLING_BATCHES_IN_FLIGHT', 2, 1, 64),
    batchWaitMs: integer(env, 'BILLING_BATCH_WAIT_MS', 0, 0, 1_000),
    poolSize: integer(env, 'BILLING_POOL_SIZE', 4, 2, 200),
    defaultCurrency: currency(env, 'BILLING_DEFAULT_CURRENCY', 'USD'),
    httpPort: integer(env, 'BILLING_HTTP_PORT', 9090, 0, 65_535),
    logLevel: env.LOG_LEVEL || 'info',
    statementTimeoutMs: integer(env, 'BILLING_STATEMENT_TIMEOUT_MS', 30_000, 0, 3_600_000),
    lockTimeoutMs: integer(env, 'BILLING_LOCK_TIMEOUT_MS', 10_000, 0, 3_600_000),
    idleInTransactionTimeoutMs: integer(env, 'BILLING_IDLE_IN_TRANSACTION_TIMEOUT_MS', 60_000, 0, 3_600_000),
    recoveryIntervalMs: integer(env, 'BILLING_RECOVERY_INTERVAL_MS', 2_000, 100, 60_000),
    dataDir: env.BILLING_DATA_DIR || undefined,
  };
}

export class ConfigError extends Error {}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, got "${raw}"`);
  }
  return Number(raw);
}

function currency(env: NodeJS.ProcessEnv, name: string, fallback: string): string {
  const raw = env[name] || fallback;
  if (!/^[A-Z]{3}$/.test(raw)) throw new ConfigError(`${name} must be three capital letters, got "${raw}"`);
  return raw;
}
