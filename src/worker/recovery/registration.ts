import { hostname } from 'node:os';
import { HostClient } from '../../db/hosts.ts';

/** pino-compatible subset. */
export interface RecoveryLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface LivenessRegistration {
  /** Ids registered so far. */
  readonly ids: readonly string[];
  /** Registers more ids; resolves once their rows are committed. */
  add(ids: readonly string[]): Promise<void>;
  /**
   * Ends the registration (after graphile-worker has stopped): drops the rows of ids that hold no
   * job (rows of ids that still hold jobs stay, so that reapers hand those jobs out) and closes the
   * session.
   */
  release(): Promise<void>;
}

const pingIntervalMs = 2000;

/**
 * Opens the registration session: a connection of its own that lives as long as the process. Each
 * registered id's row in `billing.worker_liveness` names this session by its backend pid and its
 * `backend_start`: the pair is in pg_stat_activity exactly as long as this session lives (the
 * server ends the backend when the process dies: the kernel closes the socket on SIGKILL), and no
 * other login can make a backend with the same pair. A pid alone could be reused by any login.
 *
 * `onLost` is called once when the session is lost (connection error or end, failed ping,
 * PostgreSQL restart). From then on reapers elsewhere may hand this process's jobs to other
 * workers, so the process must stop working at once: exit non-zero (70) and let the supervisor
 * start a fresh one under new ids.
 */
export async function registerLiveness(options: {
  connectionString: string;
  onLost: (err: Error) => void;
  logger: RecoveryLogger;
}): Promise<LivenessRegistration> {
  const { logger, onLost } = options;
  const client = new HostClient({
    connectionString: options.connectionString,
    application_name: 'pg-billing liveness',
    keepAlive: true,
    connectionTimeoutMillis: 10_000,
  });
  await client.connect();

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

  // One operation at a time on the session.
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
      try {
        // Ids are random (graphile-worker's pool-/worker-<18 hex>): a clash is a fault, not an update.
        await client.query(
          `insert into billing.worker_liveness (id, backend_pid, backend_start, os_pid, host)
           select id, pg_backend_pid(), (select backend_start from pg_stat_activity where pid = pg_backend_pid()), $2, $3
           from unnest($1::text[]) as id`,
          [fresh, process.pid, hostname()],
        );
      } catch (err) {
        signalLost(err as Error);
        throw err;
      }
      registered.push(...fresh);
      logger.info({ ids: fresh }, 'liveness registered');
    });

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
              `delete from billing.worker_liveness r where r.id = any($1::text[])
               and not exists (select 1 from graphile_worker.jobs j where j.locked_by = r.id)`,
              [registered],
            )
            .catch((err: Error) => logger.warn({ err: err.message }, 'liveness: could not delete registration rows'));
        }
        await client.end().catch(() => {});
      }),
  };
}
