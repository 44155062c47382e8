import { DatabaseUrlError, parseDatabaseUrl } from './db/hosts.ts';

/**
 * Every setting comes from the environment (docs/configuration.md). Parsed once, checked, and
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
  /** Port of /healthz, /readyz, /metrics; 0 any free port, -1 no HTTP server (tests). */
  httpPort: number;
  /**
   * True when BILLING_HTTP_PORT was set: that port or nothing (exit 1 when taken). Without it the
   * default port is only a preference, so that several workers run on one host (docs/operations.md: Metrics).
   */
  httpPortExplicit: boolean;
  /**
   * Address the HTTP server binds (BILLING_HTTP_HOST): loopback by default, so that nothing off
   * this host reaches an unauthenticated endpoint unless the operator says so (the image sets 0.0.0.0).
   */
  httpHost: string;
  /** How often the gauges read from the database (queue depth) are refreshed: never per scrape. */
  metricsIntervalMs: number;
  logLevel: LogLevel;
  statementTimeoutMs: number;
  lockTimeoutMs: number;
  idleInTransactionTimeoutMs: number;
  /** How often a worker looks for jobs locked by dead workers. */
  recoveryIntervalMs: number;
  /**
   * NOTIFY-queue usage (a fraction of the queue, 0-1) from which the ledger sends no notification
   * and schedules no expiry job: a full queue fails every transaction that notifies, and results are
   * rows (readers fall back to polling), expiries have the sweeper (docs/guarantees.md).
   */
  notifyQueueLimit: number;
  /** NOTIFY-queue usage (0-1) from which the watchdog ends client and reader sessions that pin the queue. */
  notifyWatchdogLimit: number;
  /** How long a client or reader session may sit in one transaction or statement before the watchdog may end it. */
  notifyPinGraceMs: number;
  /** How often the watchdog reads the queue's usage (which also advances the queue's tail). */
  notifyWatchdogIntervalMs: number;
  /** Least time between two wake-ups of the job fetcher by `jobs:insert` notifications. */
  wakeSpacingMs: number;
  /** Folder of the embedded PostgreSQL that `billing start` runs without DATABASE_URL (BILLING_DATA_DIR). */
  dataDir?: string | undefined;
}

/**
 * The default metrics port: 9090 is the Prometheus server's own and exporters live in 9100-9999.
 * When it is taken (another worker on this host) the next ones are tried (docs/operations.md: Metrics).
 */
export const defaultHttpPort = 9471;

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof logLevels)[number];

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return {
    databaseUrl: databaseUrl(env, 'DATABASE_URL'),
    concurrency: integer(env, 'BILLING_CONCURRENCY', 400, 1, 10_000),
    batchSize: integer(env, 'BILLING_BATCH_SIZE', 200, 1, 5_000),
    batchesInFlight: integer(env, 'BILLING_BATCHES_IN_FLIGHT', 1, 1, 64),
    batchWaitMs: integer(env, 'BILLING_BATCH_WAIT_MS', 0, 0, 1_000),
    poolSize: integer(env, 'BILLING_POOL_SIZE', 4, 2, 200),
    defaultCurrency: currency(env, 'BILLING_DEFAULT_CURRENCY', 'USD'),
    httpPort: integer(env, 'BILLING_HTTP_PORT', defaultHttpPort, 0, 65_535),
    httpPortExplicit: Boolean(env.BILLING_HTTP_PORT),
    httpHost: host(env, 'BILLING_HTTP_HOST', '127.0.0.1'),
    metricsIntervalMs: integer(env, 'BILLING_METRICS_INTERVAL_MS', 5_000, 100, 3_600_000),
    logLevel: oneOf(env, 'LOG_LEVEL', logLevels, 'info'),
    statementTimeoutMs: integer(env, 'BILLING_STATEMENT_TIMEOUT_MS', 30_000, 0, 3_600_000),
    lockTimeoutMs: integer(env, 'BILLING_LOCK_TIMEOUT_MS', 10_000, 0, 3_600_000),
    idleInTransactionTimeoutMs: integer(env, 'BILLING_IDLE_IN_TRANSACTION_TIMEOUT_MS', 2_000, 0, 3_600_000),
    recoveryIntervalMs: integer(env, 'BILLING_RECOVERY_INTERVAL_MS', 2_000, 100, 60_000),
    notifyQueueLimit: integer(env, 'BILLING_NOTIFY_QUEUE_LIMIT_PERCENT', 50, 1, 100) / 100,
    notifyWatchdogLimit: integer(env, 'BILLING_NOTIFY_WATCHDOG_PERCENT', 5, 1, 100) / 100,
    notifyPinGraceMs: integer(env, 'BILLING_NOTIFY_PIN_GRACE_MS', 10_000, 0, 3_600_000),
    notifyWatchdogIntervalMs: integer(env, 'BILLING_NOTIFY_WATCHDOG_INTERVAL_MS', 1_000, 100, 60_000),
    wakeSpacingMs: integer(env, 'BILLING_WAKE_SPACING_MS', 10, 0, 1_000),
    dataDir: env.BILLING_DATA_DIR || undefined,
  };
}

/**
 * The fairness settings kept in the database (billing.fairness_settings, enforced by triggers on the
 * jobs table: docs/operations.md, Fairness between logins). `billing migrate` writes the ones set
 * here; unset ones leave the database's value as it is.
 */
export interface FairnessSettings {
  /** BILLING_MAX_WAITING_PER_LOGIN: a login's waiting commands beyond which its enqueue is refused. */
  maxWaitingPerLogin?: number;
  /** BILLING_COMMANDS_PER_PRIORITY_STEP: waiting commands per step of graphile-worker priority. */
  commandsPerPriorityStep?: number;
}

export function loadFairnessSettings(env: NodeJS.ProcessEnv = process.env): FairnessSettings {
  const settings: FairnessSettings = {};
  if (env.BILLING_MAX_WAITING_PER_LOGIN)
    settings.maxWaitingPerLogin = integer(env, 'BILLING_MAX_WAITING_PER_LOGIN', 0, 1, 1_000_000_000);
  if (env.BILLING_COMMANDS_PER_PRIORITY_STEP)
    settings.commandsPerPriorityStep = integer(env, 'BILLING_COMMANDS_PER_PRIORITY_STEP', 0, 1, 1_000_000);
  return settings;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * A postgres:// or postgresql:// URL, checked here: node-pg reads anything else as a host name
 * (`not a url` became `getaddrinfo ENOTFOUND base`). libpq's multi-host form
 * (`postgres://u@h1:5432,h2:5432/db?target_session_attrs=read-write`) is accepted: src/db/hosts.ts.
 */
export function checkDatabaseUrl(name: string, raw: string): string {
  try {
    parseDatabaseUrl(raw);
  } catch (error) {
    // Several hosts are welcome too; the message names the one form most users mean.
    const why =
      error instanceof DatabaseUrlError && error.message !== 'not a postgres:// URL' ? `: ${error.message}` : '';
    throw new ConfigError(
      `${name} must be a URL like postgres://user:password@host:5432/database, got "${redactUrl(raw)}"${why}`,
    );
  }
  return raw;
}

function databaseUrl(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const raw = env[name];
  return raw ? checkDatabaseUrl(name, raw) : undefined;
}

/** A URL fit for logs and messages: the password replaced by ***. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:@/?#]*):[^@/?#]*@/i, '$1:***@');
}

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

function oneOf<T extends string>(env: NodeJS.ProcessEnv, name: string, allowed: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!allowed.includes(raw as T)) throw new ConfigError(`${name} must be one of ${allowed.join(', ')}, got "${raw}"`);
  return raw as T;
}

function host(env: NodeJS.ProcessEnv, name: string, fallback: string): string {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^[A-Za-z0-9.:_-]+$/.test(raw))
    throw new ConfigError(`${name} must be an address to listen on, like 0.0.0.0, 127.0.0.1 or ::, got "${raw}"`);
  return raw;
}
