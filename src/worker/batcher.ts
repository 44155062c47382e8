import { holdExpiry } from '../commands/contract.ts';
import type { AppliedBatch, AppliedOutcome } from '../ledger/apply.ts';
import type { BatchItem } from '../ledger/plan.ts';
import { isTransientError } from '../db/errors.ts';

export type ApplyBatch = (items: BatchItem[]) => Promise<AppliedBatch>;

export interface BatcherOptions {
  apply: ApplyBatch;
  /** Most commands in one transaction. */
  maxBatchSize: number;
  /** Transactions in flight at once from this process. */
  maxConcurrentBatches: number;
  /** How long a batch may wait to fill while another is in flight; 0 starts at once. */
  maxWaitMs: number;
  /**
   * Most commands waiting or in flight in this process; a submit beyond it waits for room. A job's
   * concurrency slot can carry a batch job of many commands: 200 batch jobs of 100 would otherwise
   * hold 20,000 commands in memory at once. Unlimited when absent.
   */
  maxPending?: number;
  onBatch?: (size: number, durationMs: number, error?: unknown) => void;
}

interface Waiting {
  item: BatchItem;
  priority: number;
  resolve: (outcome: AppliedOutcome) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit: concurrent task invocations hand their commands here, and they share a transaction
 * (and its commit and its notification). While one transaction is in flight the next batch fills,
 * so under load batches grow by themselves, and a lone command waits for nothing but the end of the
 * current tick.
 *
 * Commands wait in their job's graphile-worker priority order (lower first, arrival order within
 * one priority): a job's priority grows with its login's backlog (sql/0018_fair_queue.sql), so
 * another login's command goes into the next batch instead of behind every command of a burst
 * that this process already holds.
 */
export class CommandBatcher {
  readonly #options: BatcherOptions;
  #queue: Waiting[] = [];
  #inFlight = 0;
  // eslint-disable-next-line no-unused-private-class-members -- read by `??=` in #pump
  #timer: NodeJS.Timeout | undefined;
  #pending = 0;
  #pumpScheduled = false;
  /** Expiries at the head of #queue, ahead of the other commands, in their own arrival order. */
  #urgentQueued = 0;
  /** Submitters waiting for room under maxPending, by priority, then first come first served. */
  #waitingForRoom: { priority: number; admit: () => void }[] = [];
  /**
   * A batch has just been answered (set by #run, cleared two turns after by #flush): room and the
   * next batch wait until the tasks it answered have handed in their jobs' next commands
   * (graphile-worker starts them in the same turn, from its local queue), so that a command of a
   * lower priority among them (another login's) is let in and cut into the very next batch, not
   * the one after.
   */
  #settling = false;

  constructor(options: BatcherOptions) {
    this.#options = options;
  }

  get queued(): number {
    return this.#queue.length;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Commands waiting or in flight, those waiting for room under maxPending excluded. */
  get pending(): number {
    return this.#pending;
  }

  /** `priority`: the job's graphile-worker priority; lower goes first. */
  async submit(item: BatchItem, priority = 0): Promise<AppliedOutcome> {
    // A hold's expiry has a deadline (5 s after due) and the commands queued here have none: it
    // goes ahead of them, in the next batch, without waiting for room (an expiry is one small
    // command, and the sweeper hands over at most a few hundred at a time).
    const urgent = isExpiry(item);
    const limit = this.#options.maxPending ?? Infinity;
    // Counted when admitted (#admit), so that the admitted and the new never pass the limit together.
    if (!urgent && (this.#pending >= limit || this.#waitingForRoom.length > 0)) {
      await new Promise<void>((admit) => insertByPriority(this.#waitingForRoom, { priority, admit }, 0));
    } else {
      this.#pending += 1;
    }
    try {
      return await new Promise<AppliedOutcome>((resolve, reject) => {
        if (urgent) this.#queue.splice(this.#urgentQueued++, 0, { item, priority, resolve, reject });
        else insertByPriority(this.#queue, { item, priority, resolve, reject }, this.#urgentQueued);
        if (this.#inFlight === 0 && this.#queue.length < this.#options.maxBatchSize) this.#pumpAfterThisTick();
        else this.#pump();
      });
    } finally {
      this.#pending -= 1;
      if (!this.#settling) this.#admit();
    }
  }

  /** Lets in those waiting for room, lowest priority first, while there is room. */
  #admit(): void {
    const limit = this.#options.maxPending ?? Infinity;
    while (this.#pending < limit && this.#waitingForRoom.length) {
      this.#pending += 1;
      this.#waitingForRoom.shift()!.admit();
    }
  }

  /**
   * graphile-worker starts the jobs of one fetch together, each in its own promise chain: a batch
   * sent at the first one's submit would carry that one command, and the rest would wait for it.
   * Sent once the current run of callbacks is done, one transaction carries them all: fewer
   * transactions, lower latency and less CPU per command (bench/LOG.md).
   */
  #pumpAfterThisTick(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    process.nextTick(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  #pump(): void {
    if (this.#settling) return;
    while (this.#inFlight < this.#options.maxConcurrentBatches && this.#queue.length) {
      const full = this.#queue.length >= this.#options.maxBatchSize;
      if (!full && this.#inFlight > 0 && this.#options.maxWaitMs > 0) {
        this.#timer ??= setTimeout(() => {
          this.#timer = undefined;
          this.#flush();
        }, this.#options.maxWaitMs);
        return;
      }
      this.#flush();
    }
  }

  #flush(): void {
    if (this.#settling || !this.#queue.length || this.#inFlight >= this.#options.maxConcurrentBatches) return;
    const batch = this.#queue.splice(0, this.#options.maxBatchSize);
    this.#urgentQueued = Math.max(0, this.#urgentQueued - batch.length);
    this.#inFlight += 1;
    void this.#run(batch).finally(() => {
      this.#inFlight -= 1;
      // Two turns: the answered tasks' next commands arrive in this one; those let in from the
      // room queue are queued in the microtasks after the first.
      setImmediate(() => {
        this.#admit();
        setImmediate(() => {
          this.#settling = false;
          this.#admit();
          this.#pump();
        });
      });
    });
  }

  async #run(batch: Waiting[]): Promise<void> {
    const started = performance.now();
    try {
      const applied = await this.#options.apply(batch.map((w) => w.item));
      this.#options.onBatch?.(batch.length, performance.now() - started);
      // Set before the answers: their submitters' room is handed out once their tasks are done.
      this.#settling = true;
      batch.forEach((waiting, index) => waiting.resolve(applied.outcomes[index]!));
    } catch (error) {
      this.#options.onBatch?.(batch.length, performance.now() - started, error);
      if (batch.length === 1 || isTransientError(error)) {
        this.#settling = true;
        for (const waiting of batch) waiting.reject(error);
        return;
      }
      // Not a passing fault: one command may be at fault. Alone, the others go through and only
      // that one fails (and is retried, logged and counted) instead of taking its batch with it.
      for (const waiting of batch) await this.#run([waiting]);
    }
  }
}

/**
 * Inserts after every entry from `from` on whose priority is not higher: a queue kept in priority
 * order, first come first served within one. Searched from the end, where a burst of one
 * priority (the usual case) inserts at once.
 */
function insertByPriority<T extends { priority: number }>(queue: T[], entry: T, from: number): void {
  let at = queue.length;
  while (at > from && queue[at - 1]!.priority > entry.priority) at -= 1;
  queue.splice(at, 0, entry);
}

function isExpiry(item: BatchItem): boolean {
  return item.parsed.ok && item.parsed.command.type === holdExpiry.type;
}
