// The database of a failover chaos run: a primary with a synchronous standby that the run can make
// fail over, again and again. Two kinds: a pair built by hand (chaos/replicated-cluster.ts: SIGKILL
// of the primary, pg_ctl promote, the dead one rebuilt as the new standby) and a pg_auto_failover
// formation (chaos/pg-auto-failover.ts: a monitor decides).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { queryOnce } from './query-once.ts';
import { ReplicatedCluster, type ServerNode } from './replicated-cluster.ts';

export interface FailoverEvent {
  /** How the primary went. */
  how: string;
  /** Wall clock (ms) when it went (the kill, the switchover order). */
  downFrom: number;
  /** Wall clock (ms) when the new primary accepted writes. */
  promotedAt: number;
}

export interface ReplicatedDatabase {
  /** What the run prints about it. */
  readonly description: string;
  /** Starts it; the database `name` exists afterwards. */
  start(name: string): Promise<void>;
  /** The URL every part of the run uses: several hosts, target_session_attrs=read-write. */
  url(): string;
  /** The same hosts, the standby first. */
  standbyFirstUrl(): string;
  /** A URL to the current primary alone (the harness's reads before and after a failover). */
  primaryUrl(): string;
  /** Until the standby is synchronous and has flushed what the primary wrote so far. */
  waitSynchronous(): Promise<void>;
  /** The n-th failover (from 0); resolves once the new primary accepts writes. */
  failOver(n: number): Promise<FailoverEvent>;
  /** After failOver: until a synchronous standby is back, ready for the next one. */
  restoreStandby(): Promise<void>;
  /** The servers' logs, for deadlock reports. */
  serverLog(): string;
  /** Stops every process it started and removes its folder. */
  stop(): Promise<void>;
}

/** libpq's multi-host URL `url` with its hosts replaced by `hosts` (host:port each). */
export function withHosts(url: string, hosts: string[]): string {
  return url.replace(/^(postgres(?:ql)?:\/\/(?:[^@/?#]*@)?)[^/?#]*/, `$1${hosts.join(',')}`);
}

/** A primary and a synchronous standby built by hand (initdb, pg_basebackup -R). */
export class ReplicatedPair implements ReplicatedDatabase {
  readonly #cluster: ReplicatedCluster;
  #name = 'postgres';
  /** The primary now: after promoteStandby() and before rejoinAsStandby(), the cluster's `standby`. */
  #current: ServerNode;

  constructor(ports: [number, number]) {
    this.#cluster = new ReplicatedCluster(ports);
    this.#current = this.#cluster.primary;
  }

  get description(): string {
    const { primary, standby } = this.#cluster;
    return `a primary on 127.0.0.1:${primary.port} and a synchronous standby on 127.0.0.1:${standby.port} (${this.#cluster.dir})`;
  }

  async start(name: string): Promise<void> {
    this.#name = name;
    await this.#cluster.start();
    await queryOnce(this.#cluster.primary.url(), `create database ${name}`);
  }

  url(): string {
    // Fixed for the run: the hosts keep their order whichever is primary.
    return this.#cluster.url(this.#name, this.#byPort());
  }

  standbyFirstUrl(): string {
    return this.#cluster.url(this.#name, this.#byPort().reverse());
  }

  #byPort(): ServerNode[] {
    return [this.#cluster.primary, this.#cluster.standby].sort((a, b) => a.port - b.port);
  }

  primaryUrl(): string {
    return this.#current.url(this.#name);
  }

  waitSynchronous(): Promise<void> {
    return this.#cluster.waitSynchronous();
  }

  async failOver(): Promise<FailoverEvent> {
    const downFrom = Date.now();
    this.#cluster.killPrimary();
    await this.#cluster.promoteStandby();
    this.#current = this.#cluster.standby;
    return { how: `SIGKILL of the primary's every process, pg_ctl promote`, downFrom, promotedAt: Date.now() };
  }

  async restoreStandby(): Promise<void> {
    await this.#cluster.rejoinAsStandby();
    this.#current = this.#cluster.primary;
  }

  serverLog(): string {
    return this.#cluster
      .logFiles()
      .map((file) => {
        try {
          return readFileSync(file, 'utf8');
        } catch {
          return '';
        }
      })
      .join('\n');
  }

  stop(): Promise<void> {
    return this.#cluster.stop();
  }
}

/** Polls `probe` every 50 ms until it returns a value; throws after `timeoutMs`. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`no ${what} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** The pids of `pid`'s descendants (pgrep -P, level by level). */
export function descendantsOf(pid: number): number[] {
  const found: number[] = [];
  let level = [pid];
  while (level.length) {
    const next: number[] = [];
    for (const parent of level) {
      try {
        next.push(
          ...execFileSync('pgrep', ['-P', String(parent)], { encoding: 'utf8' })
            .split('\n')
            .filter(Boolean)
            .map(Number),
        );
      } catch {
        // no children (pgrep exits 1)
      }
    }
    found.push(...next);
    level = next;
  }
  return found;
}
