import { fileURLToPath } from 'node:url';
import type { Server } from 'node:http';
import { run, type Runner } from 'graphile-worker';
import { sql } from 'kysely';
import { taskPrefix } from '../commands/codes.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { RegistrationGatedPool, startRecovery } from './recovery/recovery.ts';
import { graphileLogger } from './graphile-logger.ts';
import { startHttpServer } from './http-server.ts';
import { createRuntime, setRuntime, workerSessionOptions, type WorkerRuntime } from './runtime.ts';
import { queueSettings } from './queue-settings.ts';

export const taskDirectory = fileURLToPath(new URL('../../tasks', import.meta.url));

export interface RunningWorker {
  runtime: WorkerRuntime;
  runner: Runner;
  httpPort: number | undefined;
  /** Graceful: in-flight commands finish, queued ones go back to the queue unlocked. */
  stop(): Promise<void>;
  /** Settles when the runner ends; rejects if it ended by itself. */
  done: Promise<void>;
}

/**
 * Starts graphile-worker with our tasks, the dead-worker reaper and the HTTP endpoints.
 * `onFatal` is called when this process must stop working at once: its liveness registration was
 * lost (other workers may now be handed its jobs) or the runner ended by itself. `billing worker`
 * exits non-zero there, so that its supervisor starts a fresh one.
 */
export async function startWorker(config: Config, logger: Logger, onFatal: (error: Error) => void): Promise<RunningWorker> {
  const runtime = createRuntime(config, logger);
  setRuntime(runtime);
  const connectionString = config.databaseUrl!;
  const settings = queueSettings(config);
  const maxPoolSize = settings.maxPoolSize;
  const queuePool = new RegistrationGatedPool({
    connectionString, max: maxPoolSize, application_name: 'pg-billing-queue', options: workerSessionOptions(config),
  });
  // graphile-worker installs handlers of its own unless the pool it is given has both.
  queuePool.on('error', (error) => logger.warn({ err: error }, 'idle queue connection lost'));
  queuePool.on('connect', (client) => client.on('error', () => {}));
  // Registers the pool's and workers' ids before graphile-worker can lock a job under them.
  const recovery = await startRecovery({
    connectionString,
    queuePool,
    logger,
    onLost: onFatal,
    reaperIntervalMs: config.recoveryIntervalMs,
  });
  const runner = await run({
    pgPool: queuePool,
    events: recovery.events,
    concurrency: settings.concurrency,
    taskDirectory,
    noHandleSignals: true,
    logger: graphileLogger(logger),
    preset: settings.preset,
  });
  let stopping = false;
  let server: Server | undefined;
  if (config.httpPort >= 0) {
    server = await startHttpServer(config.httpPort, runtime.metrics, {
      live: () => !stopping,
      ready: async () => !stopping && (await sql`select 1`.execute(runtime.db).then(() => true, () => false)),
      beforeScrape: () => refreshQueueDepth(runtime),
    });
  }
  const address = server?.address();
  const httpPort = address && typeof address === 'object' ? address.port : undefined;
  logger.info({ concurrency: config.concurrency, batch_size: config.batchSize, http_port: httpPort }, 'worker started');

  const done = runner.promise.then(
    () => {
      if (!stopping) throw new Error('graphile-worker runner stopped by itself');
    },
    (error: unknown) => {
      throw error instanceof Error ? error : new Error(String(error));
    },
  );
  done.catch((error: Error) => {
    if (stopping) return;
    logger.error({ err: error }, 'graphile-worker runner ended');
    onFatal(error);
  });
  return {
    runtime,
    runner,
    httpPort,
    done,
    async stop() {
      if (stopping) return done.catch(() => {});
      stopping = true;
      await runner.stop('shutdown requested');
      await done.catch(() => {});
      server?.close();
      await recovery.stop();
      await queuePool.end();
      await runtime.close();
      setRuntime(undefined);
    },
  };
}

/** Jobs waiting per billing task, unknown `billing/` names included (they wait forever). */
async function refreshQueueDepth(runtime: WorkerRuntime): Promise<void> {
  const { rows } = await sql<{ task: string; waiting: bigint }>`
    select task_identifier as task, count(*) as waiting from graphile_worker.jobs
    where task_identifier like ${`${taskPrefix}%`} and locked_at is null group by 1`.execute(runtime.db);
  runtime.metrics.queueDepth.reset();
  for (const row of rows) runtime.metrics.queueDepth.set({ task: row.task }, Number(row.waiting));
}
