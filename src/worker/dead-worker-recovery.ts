/**
 * Dead-worker recovery for graphile-worker 0.18 (SPEC 4.5: a job locked by a worker that died is run
 * by another worker within 10 seconds).
 *
 * graphile-worker marks a job as taken by writing `locked_by`/`locked_at`; nothing clears them when
 * the process dies, and the open-source edition only re-fetches such a job after 4 hours (hard-coded
 * in its getJobs SQL). Heartbeats exist only in the paid edition.
 *
 * We detect death from PostgreSQL itself instead of from timing:
 *
 * - Every worker process, BEFORE any job can be locked under an id, registers that id: on a dedicated
 *   connection that lives as long as the process it takes a session-level advisory lock
 *   `(LIVENESS_LOCK_CLASS, livenessLockKey(id))` and then inserts a row into the registry table, in
 *   one transaction. The row says "this id was registered"; the lock says "its session is alive".
 *   The session ends when the process dies (the kernel closes the socket on SIGKILL, the server ends
 *   the backend and drops its advisory locks), and nothing else ends it short of the connection
 *   itself being lost, which the process treats as fatal (see `registerWorkerLiveness`).
 * - A reaper in every worker lists the distinct `locked_by` of the public `graphile_worker.jobs` view,
 *   tests each registered id with `pg_try_advisory_lock` (released at once), and hands the jobs of
 *   ids whose lock was free back with the public `graphile_worker.force_unlock_workers(text[])`.
 *   A paused (SIGSTOP) or slow worker keeps its session and therefore its lock: its jobs are never
 *   handed out, however long it takes.
 * - An id that holds jobs but was never registered (a plain graphile-worker process, an older
 *   version of this service) cannot be judged: it is left alone until its oldest lock is older than
 *   `unregisteredGraceMs` (default 4 h, graphile-worker's own limit), then unlocked like
 *   graphile-worker itself would.
 *
 * Which ids: in graphile-worker 0.18 every job a pool fetches (through the local queue or not, see
 * `_runTaskList` in node_modules/graphile-worker/dist/main.js: both `getJob` variants and
 * `batchCompleteJobs`/`batchFailJobs` use `workerPool.id`) is locked with the POOL id
 * (`pool-<18 hex>`, random, made in main.js). The pool id cannot be chosen, but it is announced by
 * the synchronous `pool:create` event before the local queue and the workers exist; the workers'
 * ids (`worker-<18 hex>`, worker.js) by `worker:create` before they start. `attachLivenessToRunner`
 * registers both and gates the pg.Pool given to `run({ pgPool })` so that no connection (hence no
 * job fetch) is handed out until the registration has committed.
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type { EventEmitter } from 'node:events';
import pg from 'pg';

/** pino-compatible subset. */
export interface RecoveryLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * Advisory-lock namespace: the two-int form `pg_advisory_lock(int4 classid, int4 objid)` with this
 * fixed class id ('bilv' in ASCII: billing liveness). Other advisory-lock users in the same database
 * must avoid this class id (the single-bigint form lives in a separate space: objsubid 1 vs 2).
 */
export const LIVENESS_LOCK_CLASS = 0x62696c76;

/**
 * The advisory-lock key of a worker id: the first 4 bytes of SHA-256(UTF-8 id) read as a signed
 * big-endian int32. Stable across processes and versions (it is part of the protocol between
 * workers). Two ids colliding only errs on the safe side: a dead id looks alive while the other
 * one's session holds the key (recovery is delayed, never wrong); a registration that finds its key
 * held waits up to `lockTimeoutMs` and then fails.
 */
export function livenessLockKey(id: string): number {
  return createHash('sha256').update(id, 'utf8').digest().readInt32BE(0);
}

export const DEFAULT_LIVENESS_TABLE = 'billing.worker_liveness';
export const DEFAULT_WORKER_SCHEMA = 'graphile_worker';
export const DEFAULT_UNREGISTERED_GRACE_MS = 4 * 60 * 60 * 1000;

function quoteQualified(name: string): string {
  const parts = name.split('.');
  if (parts.length < 1 || parts.length > 2 || parts.some((p) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(p))) {
    throw new Error(`invalid table name: ${name}`);
  }
  return parts.map((p) => `"${p}"`).join('.');
}

export interface LivenessRegistration {
  /** Ids registered so far. */
  readonly ids: readonly string[];
  /** Registers more ids; resolves once they are committed and their locks are held. */
  add(ids: readonly string[]): Promise<void>;
  /**
   * Ends the registration (after graphile-worker has stopped): drops the rows of ids that hold no
   * job (rows of ids that still hold jobs stay, so that reapers hand those jobs out) and closes
   * the session, which frees the locks.
   */
  release(): Promise<void>;
}

export interface RegisterWorkerLivenessOptions {
  /** The registration gets its own pg.Client from this (preferred: it never competes with a pool). */
  connectionString?: string;
  /** Or a client held from this pool for the life of the process (counts against its `max`). */
  pgPool?: pg.Pool;
  ids?: readonly string[];
  /**
   * Called once when the registration session is lost (connection error or end, failed ping,
   * PostgreSQL restart). From that moment reapers elsewhere may hand this process's jobs to other
   * workers, so the process must stop working at once: the safe reaction is to exit non-zero
   * (`process.exit(70)`) and let the supervisor restart it under new ids.
   */
  onLost: (err: Error) => void;
  logger: RecoveryLogger;
  table?: string;
  workerSchema?: string;
  /** A `select 1` on the registration session every so often, to notice a half-open connection. */
  pingIntervalMs?: number;
  /** How long a registration waits for its key (held by a reaper's brief test, or a collision). */
  lockTimeoutMs?: number;
}

export async function registerWorkerLiveness(options: RegisterWorkerLivenessOptions): Promise<LivenessRegistration> {
  const { logger, onLost } = options;
  const table = options.table ?? DEFAULT_LIVENESS_TABLE;
  const t = quoteQualified(table);
  const jobsView = `${quoteQualified(options.workerSchema ?? DEFAULT_WORKER_SCHEMA)}."jobs"`;
  const pingIntervalMs = options.pingIntervalMs ?? 2000;
  const lockTimeoutMs = options.lockTimeoutMs ?? 5000;

  let client: pg.ClientBase;
  let closeClient: () => Promise<void>;
  if (options.connectionString) {
    const c = new pg.Client({
      connectionString: options.connectionString,
      application_name: 'pg-billing liveness',
      keepAlive: true,
      connectionTimeoutMillis: 10_000,
    });
    await c.connect();
    client = c;
    closeClient = () => c.end();
  } else if (options.pgPool) {
    const c = await options.pgPool.connect();
    client = c;
    // Destroy rather than return it: a pooled session must not keep our locks.
    closeClient = async () => c.release(true);
  } else {
    throw new Error('registerWorkerLiveness: give connectionString or pgPool');
  }

  let lost = false;
  let released = false;
  const registered: string[] = [];
  const signalLost = (err: Error) => {
    if (lost || released) return;
    lost = true;
    clearInterval(pinger);
    logger.error({ err: err.message, ids: registered }, 'liveness registration lost; this worker must stop');
    onLost(err);
  };
  client.on('error', (err: Error) => signalLost(err));
  client.on('end', () => signalLost(new Error('liveness connection ended')));

  // One operation at a time on the session: interleaved begin/commit from two callers would mix.
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = chain.then(fn);
    chain = p.catch(() => {});
    return p;
  };

  const pinger = setInterval(() => {
    void serial(() => client.query('select 1')).catch((err: Error) => signalLost(err));
  }, pingIntervalMs);
  pinger.unref();

  const add = (ids: readonly string[]): Promise<void> =>
    serial(async () => {
      if (lost) throw new Error('liveness registration lost');
      if (released) throw new Error('liveness registration released');
      const fresh = [...new Set(ids)].filter((id) => !registered.includes(id));
      if (fresh.length === 0) return;
      await client.query('begin');
      try {
        // Lock first, row second, one commit: whoever sees the row sees the lock held.
        await client.query(`set local lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))}`);
        for (const id of fresh) {
          await client.query('select pg_advisory_lock($1, $2)', [LIVENESS_LOCK_CLASS, livenessLockKey(id)]);
        }
        await client.query(
          `insert into ${t} (id, lock_key, backend_pid, os_pid, host)
           select u.id, u.k, pg_backend_pid(), $3, $4 from unnest($1::text[], $2::int4[]) as u(id, k)
           on conflict (id) do update set lock_key = excluded.lock_key, backend_pid = excluded.backend_pid,
             os_pid = excluded.os_pid, host = excluded.host, registered_at = now()`,
          [fresh, fresh.map(livenessLockKey), process.pid, hostname()],
        );
        await client.query('commit');
      } catch (err) {
        await client.query('rollback').catch(() => {});
        // Session-level advisory locks survive a rollback; dropping the whole session is the simple
        // way to not leak them, and a failed registration is fatal for the caller anyway.
        signalLost(err as Error);
        throw err;
      }
      registered.push(...fresh);
      logger.info({ ids: fresh }, 'liveness registered');
    });

  if (options.ids && options.ids.length > 0) await add(options.ids);

  return {
    get ids() {
      return registered;
    },
    add,
    release: () =>
      serial(async () => {
        if (released) return;
        released = true;
        clearInterval(pinger);
        if (!lost && registered.length > 0) {
          await client
            .query(
              `delete from ${t} r where r.id = any($1::text[])
               and not exists (select 1 from ${jobsView} j where j.locked_by = r.id)`,
              [registered],
            )
            .catch((err: Error) => logger.warn({ err: err.message }, 'liveness: could not delete registration rows'));
        }
        await closeClient().catch(() => {});
      }),
  };
}

/**
 * Makes `pool.connect()` (and so `pool.query()`) wait for every promise passed to `hold()` that was
 * added before the call. graphile-worker gets every connection it fetches jobs on from the pool
 * given to `run({ pgPool })` (helpers.js `makeWithPgClientFromPool`), so holding the pool until the
 * registration commits means no job is ever locked under an unregistered id.
 */
export function gatePoolConnections(pool: pg.Pool): { hold(until: Promise<unknown>): void } {
  let gate: Promise<unknown> = Promise.resolve();
  const original = pool.connect.bind(pool) as (cb?: (...args: unknown[]) => void) => unknown;
  const gated = function connect(cb?: (err: Error | undefined, client?: pg.PoolClient, done?: () => void) => void) {
    const current = gate;
    if (cb) {
      current.then(
        () => original(cb as (...args: unknown[]) => void),
        (err: Error) => cb(err, undefined, () => {}),
      );
      return undefined;
    }
    return current.then(() => original());
  };
  (pool as unknown as { connect: typeof gated }).connect = gated;
  return {
    hold(until) {
      const previous = gate;
      gate = Promise.all([previous, until]);
    },
  };
}

/**
 * Wires a registration to graphile-worker: registers the pool id (`pool:create`) and each worker id
 * (`worker:create`) and holds `pgPool` until they are committed. Pass the same `events` and `pgPool`
 * to `run()`. Call it before `run()`.
 */
export function attachLivenessToRunner(params: {
  events: EventEmitter;
  pgPool: pg.Pool;
  registration: LivenessRegistration;
  logger: RecoveryLogger;
}): void {
  const { events, pgPool, registration, logger } = params;
  const gate = gatePoolConnections(pgPool);
  let pending: string[] = [];
  let flush: Promise<void> | null = null;
  // Both events are emitted synchronously within one call of graphile-worker's `_runTaskList`, so
  // one microtask later we register them all in one transaction.
  const enqueue = (id: string) => {
    pending.push(id);
    if (!flush) {
      flush = Promise.resolve().then(() => {
        const ids = pending;
        pending = [];
        flush = null;
        return registration.add(ids);
      });
      const p = flush;
      p.catch((err: Error) => logger.error({ err: err.message }, 'liveness: registering graphile-worker ids failed'));
      gate.hold(p);
    }
  };
  events.on('pool:create', (e: { workerPool: { id: string } }) => enqueue(e.workerPool.id));
  events.on('worker:create', (e: { worker: { workerId: string } }) => enqueue(e.worker.workerId));
}

// ----------------------------------------------------------------------------------------------
// Reaper

export interface LockerInfo {
  lockedBy: string;
  oldestLockedAt: Date;
  jobs: number;
}

export interface RegistrationState {
  id: string;
  /** `pg_try_advisory_lock` on its key succeeded: its session is gone. */
  lockFree: boolean;
}

export interface DeadIdDecision {
  /** Registered ids whose session is gone: unlock their jobs and drop their rows. */
  dead: string[];
  /** Never-registered ids holding jobs longer than the grace: unlock like graphile-worker would. */
  expiredUnregistered: string[];
  /** Never-registered ids within the grace: left alone (cannot tell dead from alive). */
  unknown: string[];
}

/** The decision, without I/O. */
export function pickDeadIds(input: {
  lockers: readonly LockerInfo[];
  registrations: readonly RegistrationState[];
  now: Date;
  unregisteredGraceMs?: number;
}): DeadIdDecision {
  const grace = input.unregisteredGraceMs ?? DEFAULT_UNREGISTERED_GRACE_MS;
  const byId = new Map(input.registrations.map((r) => [r.id, r]));
  const dead = input.registrations.filter((r) => r.lockFree).map((r) => r.id);
  const expiredUnregistered: string[] = [];
  const unknown: string[] = [];
  for (const l of input.lockers) {
    if (byId.has(l.lockedBy)) continue;
    if (input.now.getTime() - l.oldestLockedAt.getTime() > grace) expiredUnregistered.push(l.lockedBy);
    else unknown.push(l.lockedBy);
  }
  return { dead: [...new Set(dead)].sort(), expiredUnregistered: expiredUnregistered.sort(), unknown: unknown.sort() };
}

export interface ReapResult extends DeadIdDecision {
  /** Jobs that were locked by the unlocked ids (as seen just before unlocking). */
  unlockedJobs: number;
}

export interface DeadWorkerReaperOptions {
  pgPool: pg.Pool;
  intervalMs?: number;
  logger: RecoveryLogger;
  onRecovered?: (result: ReapResult) => void;
  table?: string;
  workerSchema?: string;
  unregisteredGraceMs?: number;
  /**
   * After unlocking, send graphile-worker's own wake-up (`jobs:insert`, as `add_job` does) so that
   * idle workers fetch at once instead of at their next poll. Default true.
   */
  notify?: boolean;
}

export interface DeadWorkerReaper {
  stop(): Promise<void>;
  /** One pass now (also what the timer runs). */
  runOnce(): Promise<ReapResult>;
}

export function startDeadWorkerReaper(options: DeadWorkerReaperOptions): DeadWorkerReaper {
  const { pgPool, logger } = options;
  const intervalMs = options.intervalMs ?? 2000;
  const table = options.table ?? DEFAULT_LIVENESS_TABLE;
  const t = quoteQualified(table);
  const schema = quoteQualified(options.workerSchema ?? DEFAULT_WORKER_SCHEMA);
  const notify = options.notify ?? true;

  const pass = async (): Promise<ReapResult> => {
    const client = await pgPool.connect();
    let broken: Error | undefined;
    const taken: number[] = [];
    try {
      const exists = await client.query<{ t: string | null }>('select to_regclass($1)::text as t', [table]);
      const lockers = (
        await client.query<{ locked_by: string; oldest: Date; jobs: string }>(
          `select locked_by, min(locked_at) as oldest, count(*) as jobs
           from ${schema}."jobs" where locked_by is not null group by locked_by`,
        )
      ).rows.map((r) => ({ lockedBy: r.locked_by, oldestLockedAt: r.oldest, jobs: Number(r.jobs) }));
      let registrations: RegistrationState[] = [];
      if (exists.rows[0]?.t) {
        // Every registered row, not only those holding jobs: a dead id may still lock a named
        // queue (job_queues is not in the public view) and its row must be collected anyway.
        const rows = (
          await client.query<{ id: string; lock_key: number; free: boolean }>(
            `select id, lock_key, pg_try_advisory_lock($1, lock_key) as free from ${t}`,
            [LIVENESS_LOCK_CLASS],
          )
        ).rows;
        for (const r of rows) if (r.free) taken.push(r.lock_key);
        // Release at once: holding a dead id's key has no use, and a live registration with a
        // colliding key must not wait on us.
        for (const key of taken.splice(0)) {
          await client.query('select pg_advisory_unlock($1, $2)', [LIVENESS_LOCK_CLASS, key]);
        }
        registrations = rows.map((r) => ({ id: r.id, lockFree: r.free }));
      }
      const decision = pickDeadIds({
        lockers,
        registrations,
        now: new Date(),
        ...(options.unregisteredGraceMs !== undefined ? { unregisteredGraceMs: options.unregisteredGraceMs } : {}),
      });
      const toUnlock = [...decision.dead, ...decision.expiredUnregistered];
      const unlockedJobs = lockers.filter((l) => toUnlock.includes(l.lockedBy)).reduce((n, l) => n + l.jobs, 0);
      if (toUnlock.length > 0) {
        await client.query('begin');
        try {
          await client.query(`select ${schema}.force_unlock_workers($1::text[])`, [toUnlock]);
          if (decision.dead.length > 0) await client.query(`delete from ${t} where id = any($1::text[])`, [decision.dead]);
          if (notify && unlockedJobs > 0) {
            await client.query(`select pg_notify('jobs:insert', json_build_object('r', random(), 'count', $1::int)::text)`, [
              unlockedJobs,
            ]);
          }
          await client.query('commit');
        } catch (err) {
          await client.query('rollback').catch(() => {});
          throw err;
        }
      }
      const result: ReapResult = { ...decision, unlockedJobs };
      const newUnknown = decision.unknown.filter((id) => !reportedUnknown.has(id));
      if (newUnknown.length > 0) {
        for (const id of newUnknown) reportedUnknown.add(id);
        // A process without liveness registration (plain graphile-worker, older build) holds jobs;
        // we cannot tell whether it is alive, so its jobs wait for the grace like in graphile-worker.
        logger.warn({ ids: newUnknown, graceMs: options.unregisteredGraceMs ?? DEFAULT_UNREGISTERED_GRACE_MS }, 'jobs locked by unregistered worker ids; left alone until the grace expires');
      }
      if (unlockedJobs > 0 || decision.expiredUnregistered.length > 0) {
        logger.warn(
          { dead: decision.dead, expiredUnregistered: decision.expiredUnregistered, unlockedJobs },
          'unlocked the jobs of dead workers',
        );
        options.onRecovered?.(result);
      }
      return result;
    } catch (err) {
      broken = err as Error;
      throw err;
    } finally {
      // A session that may still hold a test lock must not go back to the pool.
      client.release(broken !== undefined || taken.length > 0 ? (broken ?? true) : undefined);
    }
  };

  let stopped = false;
  const reportedUnknown = new Set<string>();
  let running: Promise<unknown> | null = null;
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    if (stopped) return;
    running = pass()
      .catch((err: Error) => logger.error({ err: err.message }, 'dead-worker reaper pass failed'))
      .finally(() => {
        running = null;
        if (!stopped) {
          timer = setTimeout(tick, intervalMs);
          timer.unref();
        }
      });
  };
  timer = setTimeout(tick, Math.min(intervalMs, 250));
  timer.unref();

  return {
    runOnce: pass,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
