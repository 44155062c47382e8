import { fileURLToPath } from 'node:url';
import type { Server } from 'node:http';
import { run, type Runner } from 'graphile-worker';
import type { Config } from '../config.ts';
import { answers } from '../db/connection.ts';
import { currentServer, NoFittingServerError, onHostChosen, writableUrl } from '../db/hosts.ts';
import { isTransientError } from '../db/errors.ts';
import type { Logger } from '../logger.ts';
import { describeError } from './describe-error.ts';
import { RegistrationGatedPool, startRecovery, type Recovery, type RecoveryLogger } from './recovery/recovery.ts';
import { startExpirySweeper, type ExpirySweeper } from './expiry-sweeper.ts';
import { graphileLogger } from './graphile-logger.ts';
import { tolerateKnownGraphileRejections } from './graphile-rejections.ts';
import { startHttpServer } from './http-server.ts';
import { startGaugeLoop, queueGauges, type GaugeLoop } from './database-gauges.ts';
import { createRuntime, setRuntime, workerSessionOptions, type WorkerRuntime } from './runtime.ts';
import { startNotifyWatchdog, type NotifyWatchdog } from './notify-watchdog.ts';
import { WakeGate, gateJobWakeups } from './wake-gate.ts';
import { queueSettings } from './queue-settings.ts';
import { startFairFetch, type FairFetch } from './fair-fetch.ts';
import { taskNames } from '../commands/command.ts';
import { assertMigrated } from './schema-check.ts';

/** How long a lost runner may take to stop before a fresh one starts beside it. */
const oldRunnerGraceMs = 2_000;

/**
 * How long a queue runner's graceful stop may take before its liveness registration is ended
 * anyway, so that the reapers hand its jobs back (its commands may still commit here: a command
 * run twice is replayed, the first result stands). graphile-worker 0.18.0's stop can wait forever:
 * after one failed completion batch, its batcher counts each later batch as finished twice, and
 * its release waits for a count of exactly zero.
 */
const runnerStopGraceMs = 5_000;

export const taskDirectory = fileURLToPath(new URL('../../tasks', import.meta.url));

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
 * nothing) graphile-worker with our tasks and the dead-worker reaper. When the database goes away
 * (a PostgreSQL restart: the liveness session or the runner is lost) it stops that runner, waits
 * until PostgreSQL answers again and starts a fresh one in this process, as graphile-worker and
 * pg-boss users expect. `onFatal` is called only if that is impossible (the schema went away).
 */
export async function startWorker(
  config: Config,
  logger: Logger,
  onFatal: (error: Error) => void,
): Promise<RunningWorker> {
  // Every pool and session of a worker needs the primary: `any` becomes read-write (hosts.ts).
  config = { ...config, databaseUrl: writableUrl(config.databaseUrl!) };
  const connectionString = config.databaseUrl!;
  // No primary yet (a standby only, a failover under way, a server starting): the worker starts
  // and waits for one (below). Anything else, an unmigrated database included, stops it here.
  let noPrimary: Error | undefined;
  await assertMigrated(connectionString).catch((error: unknown) => {
    if (!(error instanceof NoFittingServerError || isTransientError(error))) throw error;
    noPrimary = error as Error;
  });
  tolerateKnownGraphileRejections(logger);
  const runtime = createRuntime(config, logger);
  // One line and one metric per move to another server of DATABASE_URL (a failover seen).
  let serverBefore: string | undefined;
  const stopWatchingHost = onHostChosen(connectionString, (host) => {
    const server = `${host.host}:${host.port}`;
    runtime.metrics.databaseHost.reset();
    runtime.metrics.databaseHost.set({ host: server }, 1);
    if (serverBefore) {
      runtime.metrics.databaseHostChanges.inc();
      logger.warn({ server, before: serverBefore }, 'connections moved to another server of DATABASE_URL (a failover)');
    }
    serverBefore = server;
  });
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
  setRuntime(runtime);
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
    if (!noPrimary) runner = await startQueueRunner(config, runtime, logger, lost);
  } catch (error) {
    stopWatchingHost();
    server?.close();
    await gauges?.stop();
    await watchdog.stop();
    await runtime.close();
    setRuntime(undefined);
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
          runner = await startQueueRunner(config, runtime, logger, lost);
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
        setRuntime(undefined);
      })();
      return stopped;
    },
  };
}

interface QueueRunner {
  runner: Runner;
  /** Graceful when the database answers; otherwise as far as it gets. Idempotent. */
  stop(): Promise<void>;
}

/**
 * One graphile-worker runner with its own queue pool, liveness registration and reaper: what a
 * PostgreSQL restart takes away, and what is started again afterwards. `onLost` is called (once)
 * when it can no longer work: its liveness registration is gone (other workers may now be handed
 * its jobs) or the runner ended by itself.
 */
async function startQueueRunner(
  config: Config,
  runtime: WorkerRuntime,
  logger: Logger,
  onLost: (reason: Error) => void,
): Promise<QueueRunner> {
  const connectionString = config.databaseUrl!;
  const recoveryLogger = shortIdLists(logger);
  let stopping = false;
  let lost = false;
  const lose = (reason: Error) => {
    if (stopping || lost) return;
    lost = true;
    onLost(reason);
  };
  const settings = queueSettings(config);
  const queuePool = new RegistrationGatedPool(settings.pool);
  // graphile-worker installs handlers of its own unless the pool it is given has both. The error
  // is summarised: node-pg attaches the whole client to it (its secretKey, its config).
  queuePool.on('error', (error) => {
    if (!lost) logger.warn({ error: describeError(error) }, 'idle queue connection lost');
  });
  // A flood of jobs:insert (any login may send it) must not run fetches back to back.
  let fairFetch: FairFetch | undefined;
  const wakeGate = new WakeGate(config.wakeSpacingMs, (outcome) => {
    runtime.metrics.queueWakeups.inc({ outcome });
    if (outcome === 'forwarded') fairFetch?.wake();
  });
  queuePool.on('connect', (client) => {
    client.on('error', () => {});
    gateJobWakeups(client, wakeGate);
  });
  // Registers the pool's and workers' ids before graphile-worker can lock a job under them.
  let recovery: Recovery;
  try {
    recovery = await startRecovery({
      connectionString,
      queuePool,
      logger: recoveryLogger,
      onLost: lose,
      reaperIntervalMs: config.recoveryIntervalMs,
      onRecovered: (result) => runtime.metrics.jobsReclaimed.inc(result.unlockedJobs),
      notifyQueueLimit: config.notifyQueueLimit,
    });
  } catch (error) {
    await queuePool.end().catch(() => {});
    throw error;
  }
  const events = recovery.events;
  // graphile-worker shuts a runner down by itself when it could not complete or fail jobs ("the
  // queue is in an inconsistent state"): that runner takes no more jobs, and its promise may never
  // settle (above). It is lost from that moment, so a fresh runner takes over.
  events.on('pool:gracefulShutdown', ({ message }: { message: string }) =>
    lose(new Error(`graphile-worker is shutting the queue runner down: ${message}`)),
  );
  // A full fetch while the jobs table's statistics say it is (nearly) empty: the next fetches
  // would be planned as a full scan of the table per fetched row (sql/0014_queue_statistics.sql).
  // At most one call a second, none once the runner is stopping.
  let statisticsCheckedAt = 0;
  events.on('localQueue:getJobs:complete', ({ jobs }: { jobs: unknown[] }) => {
    runtime.metrics.queueFetches.inc();
    const now = Date.now();
    if (jobs.length < settings.fetchSize || stopping || lost || now - statisticsCheckedAt < 1_000) return;
    statisticsCheckedAt = now;
    queuePool
      .query<{ analyzed: boolean }>('select billing.refresh_queue_statistics($1) as analyzed', [jobs.length])
      .then(({ rows }) => {
        if (rows[0]?.analyzed) logger.info({ jobs_fetched: jobs.length }, 'jobs table statistics were stale: analyzed');
      })
      .catch((error: unknown) =>
        logger.warn({ error: describeError(error) }, 'could not refresh the jobs table statistics'),
      );
  });
  // Another login's jobs that rank ahead of the fetched ones this process holds go first.
  fairFetch = startFairFetch({
    events,
    pool: queuePool,
    tasks: taskNames,
    onJump: (jobs) => runtime.metrics.queueJobsAhead.inc(jobs),
    onError: (error) => {
      if (!stopping && !lost)
        logger.warn({ error: describeError(error) }, 'could not look for jobs ranking ahead of the fetched ones');
    },
  });
  events.on('job:failed', ({ job }: { job: { task_identifier: string } }) =>
    runtime.metrics.jobsFailed.inc({ task: job.task_identifier }),
  );
  let sweeper: ExpirySweeper | undefined;
  const cleanUp = async () => {
    wakeGate.close();
    await fairFetch?.stop();
    await sweeper?.stop();
    await recovery.stop();
    // A runner that did not stop may hold a connection for good: the pool ends without waiting.
    await settlesWithin(queuePool.end(), runnerStopGraceMs);
  };
  let runner: Runner;
  try {
    runner = await run({
      pgPool: queuePool,
      events,
      concurrency: settings.concurrency,
      taskDirectory,
      noHandleSignals: true,
      logger: graphileLogger(logger, () => lost),
      preset: settings.preset,
    });
  } catch (error) {
    stopping = true;
    await cleanUp();
    throw error;
  }
  // Holds whose expiry job is held up (a frozen or dying worker) are expired by any worker.
  sweeper = startExpirySweeper(runtime);
  runner.promise.then(
    () => lose(new Error('graphile-worker runner stopped by itself')),
    (error: unknown) => lose(error instanceof Error ? error : new Error(String(error))),
  );
  let stopped: Promise<void> | undefined;
  return {
    runner,
    stop() {
      stopped ??= (async () => {
        stopping = true;
        const graceful = (async () => {
          await runner
            .stop('shutdown requested')
            .catch((error: unknown) =>
              logger.debug(
                { error: describeError(error) },
                'queue runner did not stop cleanly (its jobs go back through the reaper)',
              ),
            );
          await runner.promise.catch(() => {});
        })();
        if (!(await settlesWithin(graceful, runnerStopGraceMs)))
          logger.warn(
            { grace_ms: runnerStopGraceMs },
            'queue runner did not stop in time: its registration ends, and the reapers hand its jobs back',
          );
        await cleanUp();
      })();
      return stopped;
    },
  };
}

/**
 * The reaper and the liveness registration log the ids they handle: 401 of them at every
 * start with the default concurrency (the pool and 400 workers, over 11 KB). Info lines say how
 * many; the ids themselves go to debug.
 */
function shortIdLists(logger: Logger): RecoveryLogger {
  const shorten = (level: 'info' | 'warn' | 'error') => (fields: object, message: string) => {
    const ids = (fields as { ids?: unknown }).ids;
    if (Array.isArray(ids) && ids.length > 3) {
      logger[level]({ ...fields, ids: undefined, id_count: ids.length }, message);
      logger.debug({ ids }, `${message}: the ids`);
    } else {
      logger[level](fields, message);
    }
  };
  return { info: shorten('info'), warn: shorten('warn'), error: shorten('error') };
}

/** Waits for `promise` at most `ms`: true if it settled (resolved or rejected) in time. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      timedOut,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
