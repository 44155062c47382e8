import { run, type Runner, type TaskList } from 'graphile-worker';
import { describeError } from './describe-error.ts';
import { startFairFetch, type FairFetch } from './fair-fetch.ts';
import { startExpirySweeper, type ExpirySweeper } from './expiry-sweeper.ts';
import { graphileLogger } from './graphile-logger.ts';
import { queueSettings } from './queue-settings.ts';
import { refreshStatisticsOnFullFetch } from './queue-statistics.ts';
import { RegistrationGatedPool, startRecovery, type Recovery } from './recovery/recovery.ts';
import { shortIdLists } from './recovery/short-id-lists.ts';
import type { WorkerRuntime } from './runtime.ts';
import { settlesWithin } from './timers.ts';
import { WakeGate, gateJobWakeups } from './wake-gate.ts';

/**
 * How long a queue runner's graceful stop may take before its liveness registration is ended
 * anyway, so that the reapers hand its jobs back (its commands may still commit here: a command
 * run twice is replayed, the first result stands). graphile-worker 0.18.0's stop can wait forever:
 * after one failed completion batch, its batcher counts each later batch as finished twice, and
 * its release waits for a count of exactly zero.
 */
const runnerStopGraceMs = 5_000;

export interface QueueRunner {
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
export async function startQueueRunner(
  runtime: WorkerRuntime,
  taskList: TaskList,
  onLost: (reason: Error) => void,
): Promise<QueueRunner> {
  const { config, logger, metrics } = runtime;
  const connectionString = config.databaseUrl!;
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
    metrics.queueWakeups.inc({ outcome });
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
      logger: shortIdLists(logger),
      onLost: lose,
      reaperIntervalMs: config.recoveryIntervalMs,
      onRecovered: (result) => metrics.jobsReclaimed.inc(result.unlockedJobs),
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
  refreshStatisticsOnFullFetch(events, {
    queuePool,
    fetchSize: settings.fetchSize,
    logger,
    active: () => !stopping && !lost,
    onFetch: () => metrics.queueFetches.inc(),
  });
  // Another login's jobs that rank ahead of the fetched ones this process holds go first.
  fairFetch = startFairFetch({
    events,
    pool: queuePool,
    tasks: Object.keys(taskList),
    onJump: (jobs) => metrics.queueJobsAhead.inc(jobs),
    onError: (error) => {
      if (!stopping && !lost)
        logger.warn({ error: describeError(error) }, 'could not look for jobs ranking ahead of the fetched ones');
    },
  });
  events.on('job:failed', ({ job }: { job: { task_identifier: string } }) =>
    metrics.jobsFailed.inc({ task: job.task_identifier }),
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
      taskList,
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
