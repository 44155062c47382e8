// The embedded PostgreSQL that `npm start` uses when DATABASE_URL is not set. Layout of `dataDir`
// (e.g. `<project>/.data/postgres`, which git ignores):
//   pgdata/          the cluster (owned by the `postgres` system user when running as root)
//   embedded.json    { port, database, ownerPid }: lets the CLI in another terminal find the server
import { existsSync, mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { PostgresCluster, processAlive, readPostmasterPid } from './postgres-cluster.ts';

export const DEFAULT_EMBEDDED_PORT = 54329;

/** Pino-compatible subset of a logger. */
export interface EmbeddedLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface StartEmbeddedOptions {
  /** Folder for the embedded server's files; created if missing. */
  dataDir: string;
  /**
   * Preferred port. Without it: the port remembered from the last run, else 54329. A free one is picked
   * when the preferred ones are taken.
   */
  port?: number;
  /** Database to create if missing and to return the URL of. Default `billing`. */
  database?: string;
  log: EmbeddedLogger;
}

export interface EmbeddedDatabase {
  /** postgres://postgres@127.0.0.1:<port>/<database> */
  databaseUrl: string;
  port: number;
  /** The cluster folder (`<dataDir>/pgdata`). */
  pgdata: string;
  /** True when this call ran initdb (first start in this folder). */
  created: boolean;
  /** True when a server for this folder was already running and is shared with its owner process. */
  shared: boolean;
  /**
   * Stops the server cleanly (fast shutdown). Idempotent. Leaves it running when another live process
   * started it, or while another handle from this process is not stopped yet.
   */
  stop(): Promise<void>;
}

interface StateFile {
  port: number;
  database: string;
  ownerPid: number;
}

/** Handles this process holds on each cluster it started or adopted (pgdata -> count); the last stop() stops it. */
const handles = new Map<string, number>();

const stateFile = (dataDir: string) => path.join(path.resolve(dataDir), 'embedded.json');
const pgdataOf = (dataDir: string) => path.join(path.resolve(dataDir), 'pgdata');

function readState(dataDir: string): Partial<StateFile> | undefined {
  try {
    return JSON.parse(readFileSync(stateFile(dataDir), 'utf8')) as Partial<StateFile>;
  } catch {
    return undefined;
  }
}

function writeState(dataDir: string, state: StateFile): void {
  const file = stateFile(dataDir);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

/**
 * The URL of the embedded server running for `dataDir` (started by `startEmbeddedDatabase` in any
 * process), or undefined when none runs. Synchronous: reads embedded.json and postmaster.pid.
 */
export function readEmbeddedDatabaseUrl(dataDir: string, database?: string): string | undefined {
  const state = readState(dataDir);
  if (!state || typeof state.port !== 'number') return undefined;
  const postmaster = readPostmasterPid(pgdataOf(dataDir));
  if (!postmaster || !processAlive(postmaster.pid) || postmaster.port !== state.port) return undefined;
  if (postmaster.status && postmaster.status !== 'ready') return undefined;
  return urlFor(state.port, database ?? state.database ?? 'billing');
}

function urlFor(port: number, database: string): string {
  return `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(database)}`;
}

/** Whether 127.0.0.1:<port> can be bound right now. */
export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** A port the OS reports free on 127.0.0.1 (never 5432 in practice: the OS picks an ephemeral one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

/**
 * Starts (or reuses) the embedded PostgreSQL for `dataDir`: initdb on first use, start on the preferred
 * port, else the remembered one, else 54329, else a free one; creates `database` if missing. A server
 * already running for `dataDir` is reused (shared with its live owner process, or adopted from a dead one).
 */
export async function startEmbeddedDatabase(options: StartEmbeddedOptions): Promise<EmbeddedDatabase> {
  const { log } = options;
  const database = options.database ?? 'billing';
  const dataDir = path.resolve(options.dataDir);
  const pgdata = pgdataOf(dataDir);
  mkdirSync(dataDir, { recursive: true });
  const onLog = (message: string) => log.info({ pgdata }, message);
  const previous = readState(dataDir);

  // A server may already run for this folder: started by another `npm start` that is still alive
  // (share it, leave stopping to that process), or left behind by one that died (adopt it).
  const running = readPostmasterPid(pgdata);
  let cluster: PostgresCluster;
  let created = false;
  let shared = false;
  if (running && processAlive(running.pid) && Number.isInteger(running.port)) {
    cluster = new PostgresCluster({ dataDir: pgdata, port: running.port, onLog });
    await cluster.start(); // waits until it accepts connections
    const owner = previous?.ownerPid;
    shared = owner !== undefined && owner !== process.pid && processAlive(owner);
    const mine = handles.has(pgdata);
    log.info(
      { port: running.port, pgdata, shared, ownerPid: owner },
      shared
        ? 'embedded PostgreSQL: reusing the server another process runs (it stops it)'
        : mine
          ? 'embedded PostgreSQL: reusing the server this process runs'
          : 'embedded PostgreSQL: adopting a server left running by a process that is gone',
    );
    if (!shared) writeState(dataDir, { port: running.port, database, ownerPid: process.pid });
  } else {
    // An explicit port first, then the one remembered from the last run, then 54329, then any free one.
    const candidates = [options.port, previous?.port, DEFAULT_EMBEDDED_PORT].filter(
      (port): port is number => typeof port === 'number',
    );
    const firstStart = !existsSync(path.join(pgdata, 'PG_VERSION'));
    const started = Date.now();
    const result = await startOnAFreePort(pgdata, candidates, onLog, log);
    cluster = result.cluster;
    created = result.created;
    writeState(dataDir, { port: cluster.port, database, ownerPid: process.pid });
    log.info(
      { port: cluster.port, pgdata, ms: Date.now() - started, firstStart },
      firstStart ? 'embedded PostgreSQL: created and started' : 'embedded PostgreSQL: started',
    );
  }

  await createDatabaseIfMissing(cluster.databaseUrl('postgres'), database);
  if (!shared) handles.set(pgdata, (handles.get(pgdata) ?? 0) + 1);
  let stopped = false;
  return {
    databaseUrl: cluster.databaseUrl(database),
    port: cluster.port,
    pgdata,
    created,
    shared,
    async stop() {
      if (stopped || shared) return;
      stopped = true;
      const left = (handles.get(pgdata) ?? 1) - 1;
      if (left > 0) {
        handles.set(pgdata, left);
        return; // another handle in this process still uses it
      }
      handles.delete(pgdata);
      await cluster.stop('fast');
      log.info({ port: cluster.port }, 'embedded PostgreSQL: stopped');
    },
  };
}

/** Tries the candidate ports that are free, then OS-picked ones; retries when a port is lost to a race. */
async function startOnAFreePort(
  pgdata: string,
  candidates: number[],
  onLog: (message: string) => void,
  log: EmbeddedLogger,
): Promise<{ cluster: PostgresCluster; created: boolean }> {
  let created = false;
  for (let attempt = 1; ; attempt++) {
    let port = candidates.shift();
    while (port !== undefined && !(await isPortFree(port))) {
      log.info({ port }, 'embedded PostgreSQL: port taken, trying another');
      port = candidates.shift();
    }
    port ??= await freePort();
    const cluster = new PostgresCluster({ dataDir: pgdata, port, onLog });
    try {
      created = (await cluster.init()) || created;
      await cluster.start();
      return { cluster, created };
    } catch (error) {
      // Lost a race for the port: try another. Anything else is a real failure.
      if (attempt >= 4 || (await isPortFree(port))) throw error;
      log.warn({ port, err: error }, 'embedded PostgreSQL: port taken while starting, trying another');
    }
  }
}

async function createDatabaseIfMissing(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [database]);
    if (rowCount) return;
    await client.query(`create database ${client.escapeIdentifier(database)}`);
  } catch (error) {
    // 42P04 duplicate_database / 23505: another process created it at the same time.
    const code = (error as { code?: string }).code;
    if (code !== '42P04' && code !== '23505') throw error;
  } finally {
    await client.end();
  }
}
