import type pg from 'pg';

/** graphile-worker's wake-up channel: its add_job/add_jobs send it, and so can any login. */
export const jobsInsertChannel = 'jobs:insert';

/**
 * Spaces wake-ups out: the first is passed on at once, any that come within `spacingMs` of the
 * last one passed on are folded into one more, passed on when the spacing is over.
 *
 * Why: graphile-worker 0.18 fetches on each `jobs:insert` it hears (its local queue's pulse(): a
 * fetch at once when idle, or one more right after the fetch in flight). Any login can send that
 * notification, so a flood of them ran get_jobs back to back in every worker. Behind this gate a
 * flood costs at most one fetch per `spacingMs` per worker, plus graphile-worker's own one-more.
 * graphile-worker's only knob for this, localQueue.refetchDelay, drops the wake-ups that arrive
 * during the delay until the next poll (and a notification's "count" can cut it short), so every
 * real job behind a quiet moment would wait up to pollInterval.
 */
export class WakeGate {
  readonly #spacingMs: number;
  readonly #onOutcome: (outcome: 'forwarded' | 'coalesced') => void;
  #lastAt = Number.NEGATIVE_INFINITY;
  #timer: NodeJS.Timeout | undefined;
  #due: (() => void) | undefined;
  #closed = false;

  constructor(spacingMs: number, onOutcome: (outcome: 'forwarded' | 'coalesced') => void = () => {}) {
    this.#spacingMs = spacingMs;
    this.#onOutcome = onOutcome;
  }

  /** Passes `deliver` on now, or later in place of any other wake-up offered meanwhile. */
  offer(deliver: () => void): void {
    if (this.#closed) return;
    if (this.#timer) {
      this.#due = deliver;
      this.#onOutcome('coalesced');
      return;
    }
    const waitMs = this.#lastAt + this.#spacingMs - performance.now();
    if (waitMs <= 0) {
      this.#pass(deliver);
      return;
    }
    this.#due = deliver;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const due = this.#due;
      this.#due = undefined;
      if (due && !this.#closed) this.#pass(due);
    }, waitMs);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#due = undefined;
  }

  #pass(deliver: () => void): void {
    this.#lastAt = performance.now();
    this.#onOutcome('forwarded');
    deliver();
  }
}

/**
 * Puts `gate` in front of the `jobs:insert` notifications that `client` emits; other channels
 * (graphile-worker's `worker:migrate`) pass as they are. graphile-worker takes its LISTEN
 * connection from the pool it is given and subscribes to the client's `notification` event, so
 * the gate sits on the emitter of every connection of that pool.
 */
export function gateJobWakeups(client: pg.PoolClient, gate: WakeGate): void {
  const emit = client.emit.bind(client);
  client.emit = (event: string | symbol, ...args: unknown[]): boolean => {
    const message = args[0] as pg.Notification | undefined;
    if (event !== 'notification' || message?.channel !== jobsInsertChannel) return emit(event, ...args);
    gate.offer(() => emit(event, ...args));
    return true;
  };
}
