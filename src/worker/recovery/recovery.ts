/**
 * Dead-worker recovery for graphile-worker 0.18 (docs/guarantees.md, 5: a job locked by a worker that died is run
 * by another worker within 10 seconds). graphile-worker marks a job as taken by writing
 * `locked_by`/`locked_at`; nothing clears them when the process dies, and the open-source edition
 * re-fetches such a job only after 4 hours.
 *
 * Every job a pool fetches is locked with the POOL id (`pool-<18 hex>`, random; see `_runTaskList`
 * in graphile-worker's main.js), announced by the synchronous `pool:create` event before the local
 * queue and the workers exist; the workers' ids (`worker-<18 hex>`) by `worker:create`. Both are
 * registered (registration.ts) before the gated pool hands out its first connection, and every
 * worker's reaper (reaper.ts) unlocks the jobs of ids whose registering session is gone.
 */
import { EventEmitter } from 'node:events';
import type { RegistrationGatedPool } from './gated-pool.ts';
import { registerLiveness, type LivenessRegistration, type RecoveryLogger } from './registration.ts';
import { startDeadWorkerReaper, type ReapResult } from './reaper.ts';

export { RegistrationGatedPool } from './gated-pool.ts';
export type { RecoveryLogger } from './registration.ts';

export interface Recovery {
  /** Pass to `run({ events })`: the pool's and workers' ids are registered from its events. */
  events: EventEmitter;
  registration: LivenessRegistration;
  /** After graphile-worker has stopped: the reaper, then the registration. */
  stop(): Promise<void>;
}

/**
 * Call before `run()`, with the same `queuePool` given to `run({ pgPool })`. `reaperIntervalMs`
 * 'off' runs without a reaper (the dead-worker test shows that its first test then fails).
 */
export async function startRecovery(options: {
  connectionString: string;
  queuePool: RegistrationGatedPool;
  logger: RecoveryLogger;
  onLost: (err: Error) => void;
  reaperIntervalMs: number | 'off';
  /** Called after each reaper pass that unlocked jobs (the reclaimed-jobs metric). */
  onRecovered?: (result: ReapResult) => void;
  /** NOTIFY-queue usage (0-1) from which the reaper sends no wake-up. */
  notifyQueueLimit?: number;
}): Promise<Recovery> {
  const { queuePool, logger } = options;
  const registration = await registerLiveness(options);
  const events = new EventEmitter();
  let pending: string[] = [];
  let flush: Promise<void> | null = null;
  // Both events are emitted synchronously within one call of graphile-worker's `_runTaskList`, so
  // one microtask later we register them all in one statement.
  const enqueue = (id: string) => {
    pending.push(id);
    if (flush) return;
    flush = Promise.resolve().then(() => {
      const ids = pending;
      pending = [];
      flush = null;
      return registration.add(ids);
    });
    flush.catch((err: Error) => logger.error({ err: err.message }, 'liveness: registering graphile-worker ids failed'));
    queuePool.holdUntil(flush);
  };
  events.on('pool:create', (e: { workerPool: { id: string } }) => enqueue(e.workerPool.id));
  events.on('worker:create', (e: { worker: { workerId: string } }) => enqueue(e.worker.workerId));
  const reaper =
    options.reaperIntervalMs === 'off'
      ? undefined
      : startDeadWorkerReaper({
          pgPool: queuePool,
          logger,
          intervalMs: options.reaperIntervalMs,
          ...(options.onRecovered && { onRecovered: options.onRecovered }),
          ...(options.notifyQueueLimit !== undefined && { notifyQueueLimit: options.notifyQueueLimit }),
        });
  return {
    events,
    registration,
    async stop() {
      await reaper?.stop();
      await registration.release();
    },
  };
}
