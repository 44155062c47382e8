// A primary and a synchronous standby of the system's PostgreSQL (/usr/lib/postgresql/<version>/bin,
// as Debian, Ubuntu and CI install it), for the failover tests: initdb, pg_basebackup -R, a real
// SIGKILL of every server process of the primary, pg_ctl promote. Run as the `postgres` user when
// this process is root (initdb refuses root).
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { queryOnce } from './query-once.ts';

/** The newest /usr/lib/postgresql/<version>/bin that has what a replicated pair needs. */
export function findServerBinaries(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((name) => /^\d+$/.test(name))
    .sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const bin = path.join(root, version, 'bin');
    if (['initdb', 'pg_ctl', 'pg_basebackup', 'postgres'].every((name) => existsSync(path.join(bin, name)))) return bin;
  }
  return undefined;
}

/** Why this machine cannot run the pair, or undefined if it can. */
export function whyNoReplicatedCluster(): string | undefined {
  if (!findServerBinaries()) return 'no PostgreSQL server binaries in /usr/lib/postgresql/<version>/bin';
  if (process.getuid?.() === 0) {
    try {
      execFileSync('id', ['-u', 'postgres'], { stdio: 'pipe' });
    } catch {
      return 'running as root and there is no postgres user to run the servers as';
    }
  }
  return undefined;
}

/** Free TCP ports on 127.0.0.1, looked for from `first` up (below 32768: the ephemeral range). */
export async function freePortsFrom(first: number, count: number): Promise<number[]> {
  const found: number[] = [];
  for (let port = first; found.length < count && port < first + 200; port++) {
    if (await isFree(port)) found.push(port);
  }
  if (found.length < count) throw new Error(`fewer than ${count} free ports from ${first}`);
  return found;
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

export interface ServerNode {
  name: string;
  port: number;
  dataDir: string;
  /** A URL to this server alone. */
  url(database?: string): string;
}

/** The standby's name in synchronous_standby_names and its primary_conninfo. */
const standbyName = 's1';

export class ReplicatedCluster {
  readonly bin: string;
  readonly dir: string;
  /** Swapped by rejoinAsStandby(); promoteStandby() leaves them as they were (the promoted one is `standby`). */
  primary: ServerNode;
  standby: ServerNode;
  readonly #asPostgres: boolean;

  constructor(ports: [number, number]) {
    const bin = findServerBinaries();
    if (!bin) throw new Error('no PostgreSQL server binaries');
    this.bin = bin;
    this.#asPostgres = process.getuid?.() === 0;
    this.dir = mkdtempSync(path.join(tmpdir(), 'pg-billing-failover-'));
    if (this.#asPostgres) chownSync(this.dir, uidOf('postgres'), gidOf('postgres'));
    const node = (name: string, port: number): ServerNode => ({
      name,
      port,
      dataDir: path.join(this.dir, name),
      url: (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`,
    });
    this.primary = node('primary', ports[0]);
    this.standby = node('standby', ports[1]);
  }

  /** Both hosts, primary first, libpq style. */
  url(database = 'postgres', order: ServerNode[] = [this.primary, this.standby], attrs = 'read-write'): string {
    const hosts = order.map((node) => `127.0.0.1:${node.port}`).join(',');
    return `postgres://postgres@${hosts}/${database}?target_session_attrs=${attrs}`;
  }

  /** initdb, start the primary, pg_basebackup -R the standby, start it, wait until it is synchronous. */
  async start(): Promise<void> {
    const { primary, standby } = this;
    await this.#run('initdb', ['-D', primary.dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8']);
    appendFileSync(
      path.join(primary.dataDir, 'postgresql.conf'),
      [
        '',
        `port = ${primary.port}`,
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${this.dir}'`,
        'max_connections = 200',
        'wal_level = replica',
        'max_wal_senders = 4',
        // A commit is acknowledged only once the standby has flushed it: nothing acknowledged is
        // lost when the primary dies (SPEC guarantee 9).
        `synchronous_standby_names = '${standbyName}'`,
        'synchronous_commit = on',
        // Only a killed process is tested, never a lost page cache: fsync would just slow the machine.
        'fsync = off',
        'full_page_writes = off',
        // The chaos run's checks read when each result committed (pg_xact_commit_timestamp).
        'track_commit_timestamp = on',
        '',
      ].join('\n'),
    );
    await this.#pgCtl(primary, 'start');
    await this.#makeStandby(standby, primary);
  }

  /** pg_basebackup -R of `from` into `node`, named for synchronous_standby_names, started. */
  async #makeStandby(node: ServerNode, from: ServerNode): Promise<void> {
    await this.#run('pg_basebackup', [
      '-h',
      '127.0.0.1',
      '-p',
      String(from.port),
      '-U',
      'postgres',
      '-D',
      node.dataDir,
      '-R',
      '-X',
      'stream',
      '--checkpoint=fast',
      '--no-sync',
    ]);
    // Later lines win: the standby's own port, and its name for synchronous_standby_names. Once
    // promoted it has no standby of its own: with the primary's synchronous_standby_names every
    // commit would wait for one forever (what an HA manager changes on promotion, done here ahead).
    appendFileSync(
      path.join(node.dataDir, 'postgresql.conf'),
      `\nport = ${node.port}\nsynchronous_standby_names = ''\n`,
    );
    appendFileSync(
      path.join(node.dataDir, 'postgresql.auto.conf'),
      `primary_conninfo = 'host=127.0.0.1 port=${from.port} user=postgres application_name=${standbyName}'\n`,
    );
    await this.#pgCtl(node, 'start');
  }

  /**
   * After promoteStandby(): the dead primary's data folder is rebuilt as a synchronous standby of
   * the new primary (what an HA manager's rejoin does, by pg_basebackup rather than pg_rewind), and
   * the two swap roles, so that the next failover can kill `primary` again. Resolves once the new
   * standby is synchronous and has flushed everything the primary had written before.
   */
  async rejoinAsStandby(): Promise<void> {
    const [dead, promoted] = [this.primary, this.standby];
    rmSync(dead.dataDir, { recursive: true, force: true });
    await this.#makeStandby(dead, promoted);
    appendFileSync(path.join(promoted.dataDir, 'postgresql.conf'), `\nsynchronous_standby_names = '${standbyName}'\n`);
    await this.#pgCtl(promoted, 'reload');
    [this.primary, this.standby] = [promoted, dead];
    await this.waitSynchronous();
  }

  /** Until the standby is synchronous and has flushed the WAL written up to now. */
  waitSynchronous(timeoutMs = 120_000): Promise<void> {
    return waitForSynchronousStandby(this.primary.url(), timeoutMs);
  }

  /** Both servers' logs (pg_ctl -l), as they are now. */
  logFiles(): string[] {
    return [this.primary, this.standby].map((node) => `${node.dataDir}.log`);
  }

  /** SIGKILL to the primary's postmaster and every backend at once: the machine died. */
  killPrimary(): number[] {
    const pid = Number(readFileSync(path.join(this.primary.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const children = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
    // Stopped first, so that it neither starts a crash recovery nor tells a backend it is gone.
    process.kill(pid, 'SIGSTOP');
    for (const victim of [...children, pid]) {
      try {
        process.kill(victim, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    return [pid, ...children];
  }

  async promoteStandby(): Promise<void> {
    await this.#pgCtl(this.standby, 'promote');
  }

  async stop(): Promise<void> {
    for (const node of [this.primary, this.standby]) {
      if (existsSync(path.join(node.dataDir, 'postmaster.pid')))
        await this.#pgCtl(node, 'stop', ['-m', 'immediate']).catch(() => {});
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  #pgCtl(node: ServerNode, action: string, extra: string[] = []): Promise<string> {
    return this.#run('pg_ctl', [action, '-D', node.dataDir, '-w', '-t', '60', '-l', `${node.dataDir}.log`, ...extra]);
  }

  /** Runs a server binary (as `postgres` when root); rejects with its output when it fails. */
  #run(binary: string, args: string[]): Promise<string> {
    const command = path.join(this.bin, binary);
    const [file, argv] = this.#asPostgres ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
    return new Promise((resolve, reject) => {
      // pg_ctl start leaves the server holding stdout: 'exit', not 'close', ends the wait.
      const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: this.dir });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.on('error', reject);
      child.on('exit', (code) =>
        code === 0 ? resolve(output) : reject(new Error(`${binary} ${args[0]} exited ${code}: ${output}`)),
      );
    });
  }
}

/**
 * Until the server at `primaryUrl` has a synchronous standby (`sync`, or `quorum` under
 * `ANY n (...)`) that has flushed the WAL written up to now: from then on, every commit the
 * primary acknowledges is on that standby too, and so is everything committed before.
 */
export async function waitForSynchronousStandby(primaryUrl: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let target: string | undefined;
  for (;;) {
    const rows = await queryOnce<{ now: string; flushed: boolean }>(
      primaryUrl,
      `select pg_current_wal_lsn()::text as now, flush_lsn >= coalesce($1::pg_lsn, pg_current_wal_lsn()) as flushed
       from pg_stat_replication where sync_state in ('sync', 'quorum') and state = 'streaming'
       order by flush_lsn desc limit 1`,
      [target ?? null],
      { connectionTimeoutMillis: 3000 },
    ).catch(() => []);
    if (rows[0]) {
      if (rows[0].flushed) return;
      target ??= rows[0].now;
    }
    if (Date.now() > deadline) throw new Error(`no synchronous standby caught up after ${timeoutMs} ms`);
    await sleep(100);
  }
}

function uidOf(name: string): number {
  return Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }));
}
function gidOf(name: string): number {
  return Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }));
}
