import type pg from 'pg';
import { HostClient } from '../db/hosts.ts';
import { taskPrefix } from '../commands/contract.ts';
import type { Logger } from '../logger.ts';
import { describeError } from './describe-error.ts';
import type { Metrics } from './metrics.ts';
import { runPeriodically } from './periodic.ts';

/**
 * A gauge (or a few) whose values come from the database. `refresh` reads them on the gauge
 * loop's session and sets them; it runs once per interval, never because of a scrape.
 */
/** Client-side bound of a gauge read (the server's statement_timeout cannot end a lost connection's). */
const queryTimeoutMs = 30_000;

export interface DatabaseGauge {
  /** Named in the log line when a refresh fails. */
  name: string;
  refresh(session: pg.ClientBase): Promise<void>;
}

export interface GaugeLoop {
  /** True when the loop's session answers `select 1` (concurrent calls share one query). */
  databaseAnswers(): Promise<boolean>;
  /** No refresh starts after this; the session is closed. */
  stop(): Promise<void>;
}

/**
 * Refreshes `gauges` every `intervalMs` (the first at once) on one session of its own, so that
 * /metrics and /readyz only read what the loop last saw: a scrape costs the same whatever the
 * queue holds, and no number of scrapes takes a connection of the ledger's pool. The session is
 * opened on first use and again after it fails; a gauge that fails keeps its last value.
 */
export function startGaugeLoop(options: {
  connectionString: string;
  /** Backend options (`-c statement_timeout=...`): a slow read must not pin the session. */
  sessionOptions: string;
  intervalMs: number;
  gauges: readonly DatabaseGauge[];
  metrics: Metrics;
  logger: Logger;
}): GaugeLoop {
  const { gauges, metrics, logger } = options;
  let session: Promise<pg.Client> | undefined;
  let stopped = false;
  const connect = (): Promise<pg.Client> => {
    if (stopped) return Promise.reject(new Error('the gauge loop is stopped'));
    if (!session) {
      // The server DATABASE_URL's target_session_attrs asks for (the primary among several hosts).
      const client = new HostClient({
        connectionString: options.connectionString,
        application_name: 'pg-billing-metrics',
        options: options.sessionOptions,
        connectionTimeoutMillis: 5_000,
        // A database that stopped answering (a partition) must not hold the loop for good.
        query_timeout: queryTimeoutMs,
      });
      // A lost connection fails the query in flight; the next pass opens a fresh session.
      client.on('error', () => {});
      const opening = client.connect().then(() => client);
      session = opening;
      const forget = () => {
        if (session === opening) session = undefined;
      };
      opening.catch(forget);
      client.on('end', forget);
    }
    return session;
  };
  const failing = new Set<string>();
  const refreshAll = async () => {
    for (const gauge of gauges) {
      try {
        await gauge.refresh(await connect());
        failing.delete(gauge.name);
      } catch (error) {
        // Once per failure streak: a database that is away for minutes gives one line, not one per interval.
        if (!failing.has(gauge.name) && !stopped)
          logger.warn(
            { gauge: gauge.name, error: describeError(error) },
            'could not refresh a gauge from the database',
          );
        failing.add(gauge.name);
        dropSession();
      }
    }
    if (failing.size === 0) metrics.gaugesRefreshed.setToCurrentTime();
  };
  // Not awaited: ending a session whose server went away can take as long as TCP does.
  const dropSession = () => {
    const current = session;
    session = undefined;
    current?.then((client) => client.end()).catch(() => {});
  };
  const periodic = runPeriodically(refreshAll, { intervalMs: options.intervalMs, firstAfterMs: 0, onError: () => {} });
  let ping: Promise<boolean> | undefined;
  return {
    databaseAnswers() {
      ping ??= connect()
        .then((client) => client.query('select 1'))
        .then(
          () => true,
          () => {
            dropSession();
            return false;
          },
        )
        .finally(() => (ping = undefined));
      return ping;
    },
    async stop() {
      stopped = true;
      const passEnded = periodic.stop();
      dropSession();
      // A pass waiting on a database that does not answer ends at its query timeout: shutdown
      // does not wait for it (it can only fail now, its session is gone).
      await Promise.race([passEnded, new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
    },
  };
}

/**
 * Jobs waiting per billing task (unknown `billing/` names included: they wait forever) and the age
 * of the oldest one due. Read from the shared tables: every replica reports the same values.
 */
export function queueGauges(metrics: Metrics): DatabaseGauge {
  return {
    name: 'queue',
    async refresh(session) {
      const { rows } = await session.query<{ task: string; waiting: string; oldest_seconds: number | null }>(
        `select task_identifier as task, count(*) as waiting,
           extract(epoch from now() - min(run_at) filter (where run_at <= now() and attempts < max_attempts))::float8 as oldest_seconds
         from graphile_worker.jobs
         where task_identifier like $1 and locked_at is null group by 1`,
        [`${taskPrefix}%`],
      );
      const { queueDepth, oldestWaitingSeconds } = metrics;
      for (const task of (await queueDepth.get()).values.map((value) => value.labels.task))
        if (task) queueDepth.set({ task }, 0);
      for (const row of rows) queueDepth.set({ task: row.task }, Number(row.waiting));
      oldestWaitingSeconds.set(Math.max(0, ...rows.map((row) => row.oldest_seconds ?? 0)));
    },
  };
}
