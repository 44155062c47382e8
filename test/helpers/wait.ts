import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  /** A probe that throws (a server restarting, a connection refused) counts as "not yet", not as a failure. */
  throughErrors?: boolean;
}

/** Polls `probe` until it returns a value (waiting on state, not time); fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 15_000,
  options: WaitOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = options.throughErrors
      ? await Promise.resolve()
          .then(probe)
          .catch(() => undefined)
      : await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}
