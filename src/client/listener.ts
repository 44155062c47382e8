import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { HostClient } from '../db/hosts.ts';

/**
 * A wake-up for one consumer. `wait` returns at the next notification or reconnect, or after the
 * fallback delay, whichever comes first; a wake-up that came while nobody waited is not lost.
 */
export class Wakeup {
  #signalled = false;
  #release: (() => void) | undefined;
  readonly #onDispose: (wakeup: Wakeup) => void;

  constructor(onDispose: (wakeup: Wakeup) => void) {
    this.#onDispose = onDispose;
  }

  signal(): void {
    this.#signalled = true;
    this.#release?.();
  }

  async wait(timeoutMs: number): Promise<void> {
    if (!this.#signalled) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.#release = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#release = undefined;
    }
    this.#signalled = false;
  }

  dispose(): void {
    this.#release?.();
    this.#onDispose(this);
  }
}

export interface ResultListenerOptions {
  connectionString: string;
  channel: string;
  applicationName: string;
  /** Told about each lost connection and failed attempt (the listener keeps trying). */
  onError?: (error: Error) => void;
}

const firstRetryMs = 100;
const maxRetryMs = 5_000;

/**
 * One LISTEN connection shared by every caller of a client. It only wakes consumers: they read the
 * results themselves by id or cursor, so a notification lost while the connection was down costs
 * nothing. After every (re)connect it wakes everyone, because anything may have committed meanwhile
 * (graphile-worker issue 541: a LISTEN that silently never came back after a server restart).
 */
export class ResultListener {
  readonly #options: ResultListenerOptions;
  readonly #wakeups = new Set<Wakeup>();
  readonly #callbacks = new Set<() => void>();
  #client: pg.Client | undefined;
  #started = false;
  #closed = false;
  #connections = 0;

  constructor(options: ResultListenerOptions) {
    this.#options = options;
  }

  /** How many times LISTEN was established (1 + reconnects). */
  get connections(): number {
    return this.#connections;
  }

  get listening(): boolean {
    return this.#client !== undefined;
  }

  /** Connects in the background on first use; idempotent. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    void this.#connect();
  }

  subscribe(): Wakeup {
    this.start();
    const wakeup = new Wakeup((w) => this.#wakeups.delete(w));
    this.#wakeups.add(wakeup);
    return wakeup;
  }

  /** Calls `callback` on every wake-up until the returned function is called. */
  onWake(callback: () => void): () => void {
    this.start();
    this.#callbacks.add(callback);
    return () => this.#callbacks.delete(callback);
  }

  wakeAll(): void {
    for (const wakeup of this.#wakeups) wakeup.signal();
    for (const callback of this.#callbacks) callback();
  }

  async close(): Promise<void> {
    this.#closed = true;
    const client = this.#client;
    this.#client = undefined;
    this.wakeAll();
    await client?.end().catch(() => {});
  }

  async #connect(): Promise<void> {
    for (let delay = firstRetryMs; !this.#closed; delay = Math.min(delay * 2, maxRetryMs)) {
      const client = new HostClient({
        connectionString: this.#options.connectionString,
        application_name: this.#options.applicationName,
        keepAlive: true,
        connectionTimeoutMillis: 10_000,
      });
      let lost = false;
      client.on('error', (error) => this.#options.onError?.(error));
      client.on('notification', () => this.wakeAll());
      client.on('end', () => {
        lost = true;
        if (this.#client !== client) return;
        this.#client = undefined;
        if (!this.#closed) void this.#connect();
      });
      try {
        await client.connect();
        await client.query(`listen ${client.escapeIdentifier(this.#options.channel)}`);
      } catch (error) {
        this.#options.onError?.(error instanceof Error ? error : new Error(String(error)));
        await client.end().catch(() => {});
        await sleep(delay * (0.5 + Math.random() / 2));
        continue;
      }
      if (this.#closed || lost) {
        await client.end().catch(() => {});
        if (this.#closed) return;
        continue;
      }
      this.#client = client;
      this.#connections += 1;
      this.wakeAll();
      return;
    }
  }
}
