// A pg_auto_failover formation for the failover chaos run: a monitor and two nodes, made and run by
// `pg_autoctl` from Debian's packages (postgresql-<version>-auto-failover, pg-auto-failover-cli),
// each on its own port below the ephemeral range, as the `postgres` user, in a folder of its own
// (its config and state too: HOME and XDG_* point there). The URL is the one
// `pg_autoctl show uri --formation default` prints, used as it is. The first failover is
// `pg_autoctl perform failover`; the second kills the primary node (its pg_autoctl and its
// PostgreSQL, SIGKILL: the machine died) and lets the monitor promote the secondary, then starts
// the dead node's pg_autoctl again so that it rejoins as the secondary.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  appendFileSync,
  chownSync,
  existsSync,
  mkdtempSync,
  openSync,
  closeSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { queryOnce } from './query-once.ts';
import { findServerBinaries, waitForSynchronousStandby } from './replicated-cluster.ts';
import { descendantsOf, until, withHosts, type FailoverEvent, type ReplicatedDatabase } from './replicated.ts';

/** Why this machine cannot run a formation, or undefined if it can. */
export function whyNoPgAutoFailover(): string | undefined {
  if (!findServerBinaries()) return 'no PostgreSQL server binaries in /usr/lib/postgresql/<version>/bin';
  try {
    execFileSync('pg_autoctl', ['--version'], { stdio: 'pipe' });
  } catch {
    return 'no pg_autoctl: apt-get install postgresql-15-auto-failover pg-auto-failover-cli';
  }
  return undefined;
}

interface Node {
  name: string;
  port: number;
  pgdata: string;
  keeper: ChildProcess | undefined;
}

export class PgAutoFailoverFormation implements ReplicatedDatabase {
  readonly dir: string;
  readonly #bin: string;
  readonly #asPostgres: boolean;
  readonly #monitor: Node;
  readonly #nodes: [Node, Node];
  #name = 'postgres';
  #url = '';
  #primary: Node;
  /** The node killed by the last failover, to be started again by restoreStandby(). */
  #killed: Node | undefined;
  /** The running `pg_autoctl perform failover`, if any. */
  #ordered: Promise<string> | undefined;
  readonly #onExit = () => this.#killEverything();

  constructor(ports: [number, number, number]) {
    const bin = findServerBinaries();
    if (!bin) throw new Error('no PostgreSQL server binaries');
    this.#bin = bin;
    this.#asPostgres = process.getuid?.() === 0;
    this.dir = mkdtempSync(path.join(tmpdir(), 'pg-billing-pg-auto-failover-'));
    if (this.#asPostgres) {
      const [uid, gid] = ['-u', '-g'].map((flag) =>
        Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' })),
      );
      chownSync(this.dir, uid!, gid!);
    }
    const node = (name: string, port: number): Node => ({
      name,
      port,
      pgdata: path.join(this.dir, name),
      keeper: undefined,
    });
    this.#monitor = node('monitor', ports[0]);
    this.#nodes = [node('node1', ports[1]), node('node2', ports[2])];
    this.#primary = this.#nodes[0];
  }

  get description(): string {
    return (
      `a pg_auto_failover formation: monitor on 127.0.0.1:${this.#monitor.port}, ` +
      `nodes on 127.0.0.1:${this.#nodes[0].port} and 127.0.0.1:${this.#nodes[1].port} (${this.dir})`
    );
  }

  async start(name: string): Promise<void> {
    this.#name = name;
    // Whatever happens to this process, its keepers and servers do not outlive it.
    process.once('exit', this.#onExit);
    const pgctl = path.join(this.#bin, 'pg_ctl');
    const ssl = ['--auth', 'trust', '--no-ssl', '--pgctl', pgctl];
    await this.#autoctl([
      'create',
      'monitor',
      '--pgdata',
      this.#monitor.pgdata,
      '--pgport',
      String(this.#monitor.port),
      '--hostname',
      '127.0.0.1',
      ...ssl,
    ]);
    this.#run(this.#monitor);
    const monitorUri = (
      JSON.parse(await this.#autoctl(['show', 'uri', '--pgdata', this.#monitor.pgdata, '--json'])) as {
        type: string;
        uri: string;
      }[]
    ).find((row) => row.type === 'monitor')!.uri;
    // One node at a time: the first becomes the primary, the second its secondary.
    for (const node of this.#nodes) {
      await this.#autoctl([
        'create',
        'postgres',
        '--pgdata',
        node.pgdata,
        '--pgport',
        String(node.port),
        '--listen',
        '127.0.0.1',
        '--hostname',
        '127.0.0.1',
        '--name',
        node.name,
        '--dbname',
        name,
        '--monitor',
        monitorUri,
        ...ssl,
      ]);
      // The chaos run's checks read when each result committed (pg_xact_commit_timestamp).
      // And four workers, their reconnects and the producers need more than the default 100 sessions.
      appendFileSync(
        path.join(node.pgdata, 'postgresql.conf'),
        '\ntrack_commit_timestamp = on\nmax_connections = 300\n',
      );
      this.#run(node);
      await this.#waitForStates(
        node === this.#nodes[0] ? { node1: 'single' } : { node1: 'primary', node2: 'secondary' },
      );
    }
    this.#url = (
      await this.#autoctl(['show', 'uri', '--pgdata', this.#monitor.pgdata, '--formation', 'default'])
    ).trim();
  }

  /** Exactly what `pg_autoctl show uri --formation default` printed. */
  url(): string {
    return this.#url;
  }

  standbyFirstUrl(): string {
    const standby = this.#nodes.find((node) => node !== this.#primary)!;
    return withHosts(
      this.#url,
      [standby, this.#primary].map((node) => `127.0.0.1:${node.port}`),
    );
  }

  primaryUrl(): string {
    return `postgres://postgres@127.0.0.1:${this.#primary.port}/${this.#name}`;
  }

  async waitSynchronous(): Promise<void> {
    await this.#waitForStates({ [this.#primary.name]: 'primary', [this.#other(this.#primary).name]: 'secondary' });
    await waitForSynchronousStandby(this.primaryUrl());
  }

  async failOver(n: number): Promise<FailoverEvent> {
    const [old, next] = [this.#primary, this.#other(this.#primary)];
    const downFrom = Date.now();
    let how: string;
    let ordered: Promise<string> | undefined;
    if (n % 2 === 0) {
      how = 'pg_autoctl perform failover';
      ordered = this.#autoctl(['perform', 'failover', '--pgdata', this.#monitor.pgdata]);
      ordered.catch(() => {}); // awaited below
    } else {
      how = 'SIGKILL of the primary node (its pg_autoctl and PostgreSQL); the monitor promotes';
      this.#killNode(old);
      this.#killed = old;
    }
    // Promoted: the other node takes writes (pg_auto_failover keeps it read-only until the old
    // primary is known to be demoted, or its primary_demote_timeout has passed).
    const promotedAt = await until(
      'a writable new primary',
      async () => {
        const rows = await queryOnce<{ writable: boolean }>(
          `postgres://postgres@127.0.0.1:${next.port}/${this.#name}`,
          "select not pg_is_in_recovery() and current_setting('transaction_read_only') = 'off' as writable",
          [],
          { connectionTimeoutMillis: 2000 },
        );
        return rows[0]?.writable ? Date.now() : undefined;
      },
      300_000,
    );
    // pg_autoctl returns once the old primary is back as the secondary: restoreStandby() waits for it.
    this.#ordered = ordered;
    this.#primary = next;
    return { how, downFrom, promotedAt };
  }

  async restoreStandby(): Promise<void> {
    await this.#ordered;
    this.#ordered = undefined;
    if (this.#killed) {
      this.#run(this.#killed);
      this.#killed = undefined;
    }
    await this.waitSynchronous();
  }

  serverLog(): string {
    return this.#nodes
      .flatMap((node) => {
        const dir = path.join(node.pgdata, 'log');
        return existsSync(dir) ? readdirSync(dir).map((file) => readFileSync(path.join(dir, file), 'utf8')) : [];
      })
      .join('\n');
  }

  async stop(): Promise<void> {
    // pg_autoctl stops its PostgreSQL on SIGTERM; whatever is left after 30 s is killed.
    const keepers = [...this.#nodes, this.#monitor].filter((node) => node.keeper);
    for (const node of keepers) for (const pid of this.#autoctlPids(node)) signal(pid, 'SIGTERM');
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && keepers.some((node) => node.keeper!.exitCode === null)) await sleep(100);
    this.#killEverything();
    rmSync(this.dir, { recursive: true, force: true });
    process.off('exit', this.#onExit);
  }

  /** SIGKILL of every process this formation started, then an immediate stop of any server left. */
  #killEverything(): void {
    for (const node of [...this.#nodes, this.#monitor]) {
      if (node.keeper) this.#killNode(node);
      const pidFile = path.join(node.pgdata, 'postmaster.pid');
      if (!existsSync(pidFile)) continue;
      const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
      if (pid > 0 && isRunning(pid)) {
        for (const child of descendantsOf(pid)) signal(child, 'SIGKILL');
        signal(pid, 'SIGKILL');
      }
    }
  }

  #other(node: Node): Node {
    return this.#nodes[0] === node ? this.#nodes[1] : this.#nodes[0];
  }

  /** The keeper's process tree and its PostgreSQL, SIGKILLed at once (stopped first). */
  #killNode(node: Node): void {
    const root = node.keeper?.pid;
    if (!root) return;
    const tree = [root, ...descendantsOf(root)];
    for (const pid of tree) signal(pid, 'SIGSTOP');
    for (const pid of tree) signal(pid, 'SIGKILL');
    node.keeper = undefined;
  }

  /** The pg_autoctl processes under a keeper (runuser's children), which take signals. */
  #autoctlPids(node: Node): number[] {
    const root = node.keeper?.pid;
    return root ? (this.#asPostgres ? descendantsOf(root).slice(0, 1) : [root]) : [];
  }

  /** `pg_autoctl run` for a node, in the background, its output in <pgdata>.out. */
  #run(node: Node): void {
    const out = openSync(`${node.pgdata}.out`, 'a');
    const [file, args] = this.#command(['run', '--pgdata', node.pgdata]);
    node.keeper = spawn(file, args, { stdio: ['ignore', out, out], cwd: this.dir, env: this.#env() });
    closeSync(out);
  }

  /** Until the monitor reports each named node in the given state (and wants it there). */
  async #waitForStates(states: Record<string, string>, timeoutMs = 180_000): Promise<void> {
    await until(
      `nodes in states ${JSON.stringify(states)}`,
      async () => {
        const rows = await queryOnce<{ nodename: string; reportedstate: string; goalstate: string }>(
          `postgres://postgres@127.0.0.1:${this.#monitor.port}/pg_auto_failover`,
          'select nodename, reportedstate::text, goalstate::text from pgautofailover.node',
          [],
          { connectionTimeoutMillis: 2000 },
        );
        const fits = Object.entries(states).every(([name, state]) =>
          rows.some((row) => row.nodename === name && row.reportedstate === state && row.goalstate === state),
        );
        return fits ? true : undefined;
      },
      timeoutMs,
    );
  }

  #env(): NodeJS.ProcessEnv {
    const { PGHOST: _host, PGPORT: _port, PGDATA: _data, ...env } = process.env;
    return {
      ...env,
      HOME: this.dir,
      XDG_CONFIG_HOME: path.join(this.dir, 'config'),
      XDG_DATA_HOME: path.join(this.dir, 'share'),
      XDG_RUNTIME_DIR: path.join(this.dir, 'run'),
    };
  }

  /** pg_autoctl with `args`, as `postgres` when this process is root (it refuses root). */
  #command(args: string[]): [string, string[]] {
    if (!this.#asPostgres) return ['pg_autoctl', args];
    const env = this.#env();
    const keep = ['HOME', 'XDG_CONFIG_HOME', 'XDG_DATA_HOME', 'XDG_RUNTIME_DIR'].map((key) => `${key}=${env[key]}`);
    return ['runuser', ['-u', 'postgres', '--', 'env', ...keep, 'pg_autoctl', ...args]];
  }

  /** Runs pg_autoctl to its end; its stdout, or a rejection with its output. */
  #autoctl(args: string[]): Promise<string> {
    const [file, argv] = this.#command(args);
    return new Promise((resolve, reject) => {
      const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: this.dir, env: this.#env() });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('error', reject);
      // `create` leaves nothing running; 'exit', not 'close', in case a child holds the pipes.
      child.on('exit', (code) =>
        code === 0
          ? resolve(stdout)
          : reject(new Error(`pg_autoctl ${args.slice(0, 2).join(' ')} exited ${code}: ${stderr.slice(-2000)}`)),
      );
    });
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
