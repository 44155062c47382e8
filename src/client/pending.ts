import type pg from 'pg';
import type { CommandType } from '../commands/command.ts';
import { ClientClosedError, ResultTimeoutError } from './errors.ts';
import type { ResultListener } from './listener.ts';
import { resultColumns, toStoredResult, type ResultRow } from './rows.ts';
import type { CommandResult, IdConflictResult, StoredResult } from './types.ts';

interface Waiter {
  id: string;
  type: CommandType;
  /** The worker's fingerprint of this command: the stored row's tells a replay from an id reuse. */
  fingerprint: string;
  jobId: bigint | null;
  resolve(result: CommandResult): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout | undefined;
}

export interface PendingCall {
  promise: Promise<CommandResult>;
  /** Called once the command is enqueued: starts the timeout and looks for a result at once. */
  enqueued(jobId: bigint, timeoutMs: number): void;
  /** The enqueue failed: forget the call. */
  abandon(): void;
}

/** How long a pending call goes without a look at the table when no notification comes. */
export const fallbackCheckMs = 1_000;

/**
 * Least time between the starts of two reads woken by notifications. Any login may send
 * `billing_results`: a flood of them costs each client at most one read per spacing (plus the one
 * in flight), not one read per notification back to back.
 */
export const readSpacingMs = 10;

/** Waits until `spacingMs` has passed since `lastReadAt` (a performance.now() time). */
export async function spaceAfter(lastReadAt: number, spacingMs = readSpacingMs): Promise<void> {
  const waitMs = lastReadAt + spacingMs - performance.now();
  if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
}

/**
 * Every caller waiting for a result, checked together with one query by id: on each notification,
 * after each reconnect of the listener and on a timer, so a lost notification only delays a result.
 */
export class PendingResults {
  readonly #pool: pg.Pool;
  readonly #listener: ResultListener;
  readonly #waiters = new Map<string, Set<Waiter>>();
  #stopWaking: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #checking = false;
  #checkAgain = false;
  #closed = false;
  #lastReadAt = Number.NEGATIVE_INFINITY;
  /** Reads of the table so far (what a notification flood would multiply). */
  reads = 0;

  readonly #readSpacingMs: number;

  constructor(pool: pg.Pool, listener: ResultListener, options: { readSpacingMs?: number } = {}) {
    this.#pool = pool;
    this.#listener = listener;
    this.#readSpacingMs = options.readSpacingMs ?? readSpacingMs;
  }

  get size(): number {
    let count = 0;
    for (const waiters of this.#waiters.values()) count += waiters.size;
    return count;
  }

  add(id: string, type: CommandType, fingerprint: string): PendingCall {
    if (this.#closed) throw new ClientClosedError();
    let waiter!: Waiter;
    const promise = new Promise<CommandResult>((resolve, reject) => {
      waiter = { id, type, fingerprint, jobId: null, resolve, reject, timer: undefined };
    });
    // The caller awaits the promise only once the enqueue has answered; a close() before that
    // rejects it first, which must not count as an unhandled rejection (the caller still gets it).
    promise.catch(() => {});
    let set = this.#waiters.get(id);
    if (!set) this.#waiters.set(id, (set = new Set()));
    set.add(waiter);
    this.#stopWaking ??= this.#listener.onWake(() => void this.check());
    this.#timer ??= setInterval(() => void this.check(), fallbackCheckMs);
    return {
      promise,
      enqueued: (jobId, timeoutMs) => {
        waiter.jobId = jobId;
        if (!this.#waiters.get(id)?.has(waiter)) return; // settled meanwhile (the client was closed)
        if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
          waiter.timer = setTimeout(
            () => this.#settle(waiter, () => waiter.reject(new ResultTimeoutError(id, jobId, timeoutMs))),
            timeoutMs,
          );
        }
        void this.check();
      },
      abandon: () => this.#remove(waiter),
    };
  }

  /**
   * Looks up every pending id; requests that come during a look collapse into one more, started
   * no sooner than the read spacing (default `readSpacingMs`) after the previous one.
   */
  async check(): Promise<void> {
    if (this.#checking) {
      this.#checkAgain = true;
      return;
    }
    this.#checking = true;
    try {
      do {
        await spaceAfter(this.#lastReadAt, this.#readSpacingMs);
        this.#checkAgain = false;
        if (this.#waiters.size === 0) return;
        this.#lastReadAt = performance.now();
        this.reads += 1;
        const ids = [...this.#waiters.keys()];
        const { rows } = await this.#pool.query<ResultRow & { fingerprint: string }>(
          `select ${resultColumns}, fingerprint from billing.operations where id = any($1::text[])`,
          [ids],
        );
        for (const row of rows) this.#deliver(row);
      } while (this.#checkAgain);
    } catch {
      // The database is unreachable for now; the timer and the listener's reconnect try again.
    } finally {
      this.#checking = false;
    }
  }

  closeAll(): void {
    this.#closed = true;
    for (const set of [...this.#waiters.values()]) {
      for (const waiter of set)
        this.#settle(waiter, () =>
          waiter.reject(
            new ClientClosedError(
              'the billing client was closed before the result came (the command may still be applied)',
            ),
          ),
        );
    }
  }

  #deliver(row: ResultRow & { fingerprint: string }): void {
    const set = this.#waiters.get(row.id);
    if (!set) return;
    const stored = toStoredResult(row);
    for (const waiter of [...set]) {
      if (waiter.jobId === null) continue; // still enqueueing: its own look after the enqueue finds this row
      // The worker compares the same fingerprints: a differing one can only end as id_conflict.
      // The row names the job that wrote it: another job's row was there before this call enqueued.
      const result =
        waiter.fingerprint === row.fingerprint
          ? { ...stored, replayed: stored.job_id !== waiter.jobId }
          : idConflict(waiter, stored);
      this.#settle(waiter, () => waiter.resolve(result));
    }
  }

  #settle(waiter: Waiter, outcome: () => void): void {
    if (!this.#remove(waiter)) return;
    outcome();
  }

  #remove(waiter: Waiter): boolean {
    const set = this.#waiters.get(waiter.id);
    if (!set?.delete(waiter)) return false;
    clearTimeout(waiter.timer);
    if (set.size === 0) this.#waiters.delete(waiter.id);
    if (this.#waiters.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      this.#stopWaking?.();
      this.#stopWaking = undefined;
    }
    return true;
  }
}

function idConflict(waiter: Waiter, original: StoredResult): IdConflictResult {
  return {
    id: waiter.id,
    seq: null,
    type: waiter.type,
    status: 'rejected',
    code: 'id_conflict',
    message: `id ${waiter.id} was already used by another ${original.type} command (result #${original.seq}, ${original.code}); this one had no effect`,
    balances: [],
    job_id: waiter.jobId,
    replayed: false,
    original,
  };
}
