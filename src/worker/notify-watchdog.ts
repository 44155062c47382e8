import pg from 'pg';
import { HostClient } from '../db/hosts.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { describeError } from './describe-error.ts';
import type { Metrics } from './metrics.ts';
import { runPeriodically } from './periodic.ts';

export interface NotifyWatchdog {
  stop(): Promise<void>;
  /** One pass now (also what the timer runs); resolves with the queue usage it read. */
  runOnce(): Promise<number>;
}

/**
 * PostgreSQL's NOTIFY queue is one per server, and any login may LISTEN. A listener that sits in
 * an open transaction (or in one long statement) reads nothing, and the queue's tail cannot pass
 * it: once the queue is full every transaction that sends NOTIFY fails at commit, billing.submit
 * included. And the tail only moves when a listener reads or someone calls
 * pg_notification_queue_usage(), so without a call the queue stays full after the listener left.
 *
 * Every `notifyWatchdogIntervalMs` this reads pg_notification_queue_usage() (which advances the tail
 * past what every live listener has read: the service is back within one interval of the pinning
 * session's end), exports it, and while usage is at or above `notifyWatchdogLimit` ends the client
 * and reader sessions idle in a transaction, or running one statement, for longer than
 * `notifyPinGraceMs` (billing.end_queue_pinning_sessions, sql/0016). A superuser's session cannot
 * be ended (pg_signal_backend does not reach it); the queue is back one interval after it leaves.
 *
 * It has a connection of its own: the ledger's pool may be busy, and the check must go on whatever
 * the ledger does.
 */
export function startNotifyWatchdog(options: {
  config: Pick<
    Config,
    'databaseUrl' | 'notifyWatchdogLimit' | 'notifyPinGraceMs' | 'notifyWatchdogIntervalMs' | 'statementTimeoutMs'
  >;
  logger: Logger;
  metrics: Metrics;
}): NotifyWatchdog {
  const { config, logger, metrics } = options;
  const pool = new pg.Pool({
    connectionString: config.databaseUrl,
    // The server DATABASE_URL's target_session_attrs asks for (the primary among several hosts).
    Client: HostClient,
    max: 1,
    application_name: 'pg-billing-notify-watchdog',
    options: `-c statement_timeout=${Math.min(config.statementTimeoutMs || 10_000, 10_000)}`,
  });
  pool.on('error', () => {}); // a lost idle connection: the next pass connects again
  let warnedAt = 0;
  const pass = async (): Promise<number> => {
    const { rows } = await pool.query<{ usage: number }>('select pg_notification_queue_usage() as usage');
    const usage = Number(rows[0]?.usage ?? 0);
    metrics.notifyQueueUsage.set(usage);
    if (usage < config.notifyWatchdogLimit) return usage;
    const ended = await pool.query<{ pid: number; login: string; state: string; since: Date; ended: boolean }>(
      'select pid, login, state, since, ended from billing.end_queue_pinning_sessions($1)',
      [config.notifyPinGraceMs],
    );
    for (const session of ended.rows) {
      if (!session.ended) continue;
      metrics.notifySessionsEnded.inc();
      logger.warn(
        { pid: session.pid, login: session.login, state: session.state, since: session.since, queue_usage: usage },
        'ended a session that pinned the NOTIFY queue (in one transaction or statement past the grace period)',
      );
    }
    const now = Date.now();
    if (now - warnedAt >= 10_000) {
      warnedAt = now;
      logger.warn(
        { queue_usage: usage, limit: config.notifyWatchdogLimit },
        'the NOTIFY queue is filling: a listener is not reading (a superuser session cannot be ended by the service)',
      );
    }
    return usage;
  };
  const periodic = runPeriodically(pass, {
    intervalMs: config.notifyWatchdogIntervalMs,
    onError: (error) =>
      logger.warn({ error: describeError(error) }, 'NOTIFY-queue watchdog pass failed; the next one tries again'),
  });
  return {
    runOnce: pass,
    async stop() {
      await periodic.stop();
      await pool.end().catch(() => {});
    },
  };
}
