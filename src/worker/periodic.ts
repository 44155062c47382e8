export interface Periodic {
  /** No pass starts after this; resolves once the pass in flight, if any, has ended. */
  stop(): Promise<void>;
}

/**
 * Runs `pass` every `intervalMs`, the first after `firstAfterMs` (default: the interval). Passes
 * never overlap: the next is timed from the end of the previous one. A failed pass goes to
 * `onError` and the next one tries again. The timers are unref'd: they never keep the process alive.
 */
export function runPeriodically(
  pass: () => Promise<unknown>,
  options: { intervalMs: number; firstAfterMs?: number; onError: (error: unknown) => void },
): Periodic {
  let stopped = false;
  let running: Promise<unknown> | undefined;
  let timer: NodeJS.Timeout | undefined;
  const schedule = (ms: number) => {
    timer = setTimeout(tick, ms);
    timer.unref();
  };
  const tick = () => {
    if (stopped) return;
    running = pass()
      .catch(options.onError)
      .finally(() => {
        running = undefined;
        if (!stopped) schedule(options.intervalMs);
      });
  };
  schedule(options.firstAfterMs ?? options.intervalMs);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
