import type { Server } from 'node:http';
import type { Runner } from 'graphile-worker';
import type { Config } from '../config.ts';
import { answers } from '../db/connection.ts';
import { currentServer, NoFittingServerError, writableUrl } from '../db/hosts.ts';
import { isTransientError } from '../db/errors.ts';
import type { Logger } from '../logger.ts';
import { watchDatabaseHost } from './database-host.ts';
import { describeError } from './describe-error.ts';
import { tolerateKnownGraphileRejections } from './graphile-rejections.ts';
import { startHttpServer } from './http-server.ts';
import { startGaugeLoop, queueGauges, type GaugeLoop } from './database-gauges.ts';
import { startNotifyWatchdog, type NotifyWatchdog } from './notify-watchdog.ts';
import { startQueueRunner, type QueueRunner } from './queue-runner.ts';
import { createRuntime, workerSessionOptions, type WorkerRuntime } from './runtime.ts';
import { assertMigrated } from './schema-check.ts';
import { loadCommandTaskFactories, makeCommandTaskList } from './task-folder.ts';
import { sleep } from './timers.ts';

/** How long a lost runner may take to stop before a fresh one starts beside it. */
const oldRunnerGraceMs = 2_000;

export interface RunningWorker {
  runtime: WorkerRuntime;
  /** The queue runner working now (a fresh one after each PostgreSQL restart). */
  readonly runner: Runner;
  /** The port /metrics listens on (undefined: no HTTP server), and the address. */
  httpPort: number | undefined;
  httpHost: string | undefined;
  /** Graceful: in-flight commands finish, queued ones go back to the queue unlocked. */
  stop(): Promise<void>;
  /** Settles once stopped. */
  done: Promise<void>;
}

/**
 * Starts a billing worker: the HTTP endpoints, then (if the database is migrated: it creates
 * nothing) graphile-worker with the command tasks of tasks/billing/ and the dead-worker reaper.
 * When the database goes away (a PostgreSQL restart: the liveness session or the runner is lost)
 * it stops that runner, waits until PostgreSQL answers again and starts a fresh one in this
 * process, as graphile-worker and pg-boss users expect. `onFatal` is called only if that is
 * impossible (the schema went away).
 */
export async function startWorker(
  config: Config,
  logger: Logger,
  onFatal: (error: Error) => void,
): Promise<RunningWorker> {
  // Every pool and session of a worker needs the primary: `any` becomes read-write (hosts.ts).
  config = { ...config, databaseUrl: writableUrl(config.databaseUrl!) };
  const connectionString = config.databaseUrl!;
  // A command without its task file (or a task file without its command) stops the worker here.
  const taskFactories = await loadCommandTaskFactories();
  // No primary yet (a standby only, a failover under way, a server starting): the worker starts
  // and waits for one (below). Anything else, an unmigrated database included, stops it here.
  let noPrimary: Error | undefined;
  await assertMigrated(connectionString).catch((error: unknown) => {
    if (!(error instanceof NoFittingServerError || isTransientError(error))) throw error;
    noPrimary = error as Error;
  });
  tolerateKnownGraphileRejections(logger);
  const runtime = createRuntime(config, logger);
  const taskList = makeCommandTaskList(taskFactories, { ...runtime, defaultCurrency: config.defaultCurrency });
  const stopWatchingHost = watchDatabaseHost(connectionString, runtime.metrics, logger);
  let stopping = false;
  let runner: QueueRunner | undefined;
  let server: Server | undefined;
  let gauges: GaugeLoop | undefined;
  if (config.httpPort >= 0) {
    // Scrapes and probes read what this loop last saw, on its own session: never the ledger's pool.
    gauges = startGaugeLoop({
      connectionString,
      sessionOptions: workerSessionOptions(config),
      intervalMs: config.metricsIntervalMs,
      gauges: [queueGauges(runtime.metrics)],
      metrics: runtime.metrics,
      logger,
    });
    const loop = gauges;
    try {
      server = await startHttpServer(
        { port: config.httpPort, host: config.httpHost, explicit: config.httpPortExplicit },
        runtime.metrics,
        {
          live: () => !stopping,
          // Ready on a primary only (the gauge session's connection checks that: src/db/hosts.ts).
          ready: async () => !stopping && runner !== undefined && (await loop.databaseAnswers()),
          server: () => currentServer(connectionString),
        },
      );
    } catch (error) {
      await gauges.stop();
      await runtime.close();
      throw error;
    }
  }
  // Process-wide, not per runner: it must go on while a runner is lost or restarting.
  const watchdog: NotifyWatchdog = startNotifyWatchdog({ config, logger, metrics: runtime.metrics });
  const address = server?.address();
  const httpPort = address && typeof address === 'object' ? address.port : undefined;
  const httpHost = address && typeof address === 'object' ? address.address : undefined;
  if (httpPort !== undefined && !config.httpPortExplicit && config.httpPort !== 0 && httpPort !== config.httpPort) {
    logger.info(
      { http_port: httpPort, default_port: config.httpPort },
      'default metrics port taken (another worker on this host?): using the next free one',
    );
  }

  const wake = new AbortController();
  const lost = (reason: Error) => {
    if (stopping || restarting) return;
    restarting = restartRunner(reason).finally(() => (restarting = undefined));
  };
  let restarting: Promise<void> | undefined;
  try {
    if (!noPrimary) runner = await startQueueRunner(runtime, taskList, lost);
  } catch (error) {
    stopWatchingHost();
    server?.close();
    await gauges?.stop();
    await watchdog.stop();
    await runtime.close();
    throw error;
  }
  logger.info(
    {
      concurrency: config.concurrency,
      batch_size: config.batchSize,
      http_port: httpPort,
      http_host: httpHost,
      server: currentServer(connectionString),
    },
    'worker started',
  );
  if (noPrimary) {
    logger.warn(
      { reason: describeError(noPrimary) },
      'no primary PostgreSQL in DATABASE_URL yet: the worker waits for one (not ready until then)',
    );
    restarting = restartRunner(undefined).finally(() => (restarting = undefined));
  }

  /** Stops the lost runner (if any), then starts fresh ones until one runs (or the worker is stopped). */
  async function restartRunner(reason: Error | undefined): Promise<void> {
    if (reason)
      logger.warn(
        { reason: describeError(reason) },
        'queue runner lost (the database went away, or graphile-worker shut it down): a fresh one starts when PostgreSQL answers',
      );
    const old = runner;
    runner = undefined;
    // The old runner's in-flight jobs may wait on a connection that will never answer (a partition
    // swallows its bytes): give it a moment to finish, then start the fresh runner anyway. Its
    // jobs are handed back by the reapers, since its liveness session is gone.
    if (old) await Promise.race([old.stop(), sleep(oldRunnerGraceMs, wake.signal).catch(() => {})]);
    for (let delayMs = 100; !stopping; delayMs = Math.min(delayMs * 2, 1_000)) {
      if (await answers(connectionString)) {
        try {
          await assertMigrated(connectionString);
          runner = await startQueueRunner(runtime, taskList, lost);
          if (reason) runtime.metrics.runnerRestarts.inc();
          logger.info('back at work: a fresh queue runner takes jobs');
          if (stopping) await runner.stop();
          return;
        } catch (error) {
          if (error instanceof Error && error.name === 'NotMigratedError') {
            onFatal(error);
            return;
          }
          logger.warn({ error: describeError(error) }, 'starting a fresh queue runner failed: trying again');
        }
      }
      await sleep(delayMs, wake.signal);
    }
  }

  let stopped: Promise<void> | undefined;
  return {
    runtime,
    get runner() {
      if (!runner) throw new Error('no queue runner right now: the worker is reconnecting to PostgreSQL');
      return runner.runner;
    },
    httpPort,
    httpHost,
    get done() {
      return stopped ?? new Promise<void>(() => {});
    },
    stop() {
      stopped ??= (async () => {
        stopping = true;
        wake.abort();
        await restarting;
        await runner?.stop();
        await watchdog.stop();
        stopWatchingHost();
        server?.close();
        await gauges?.stop();
        await runtime.close();
      })();
      return stopped;
    },
  };
}
