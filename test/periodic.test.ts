import t from 'tap';
import { runPeriodically } from '../src/worker/periodic.ts';

// The loop under the expiry sweeper and the dead-worker reaper: one pass at a time, a failed pass
// does not end the loop, and stop() waits for the pass in flight. Each step waits on a state the
// passes report, never on a time.

t.test(
  'passes never overlap, a failure is reported and the next pass runs, stop waits for the pass in flight',
  async (t) => {
    // The loop's timers are unref'd (they never keep a process alive): this one keeps the test's.
    const keepAlive = setInterval(() => {}, 1000);
    t.teardown(() => clearInterval(keepAlive));
    let inFlight = 0;
    let mostInFlight = 0;
    let passes = 0;
    const errors: unknown[] = [];
    const third = Promise.withResolvers<void>();
    const finishThird = Promise.withResolvers<void>();
    const periodic = runPeriodically(
      async () => {
        inFlight += 1;
        mostInFlight = Math.max(mostInFlight, inFlight);
        passes += 1;
        try {
          if (passes === 1) throw new Error('first pass fails');
          if (passes === 3) {
            third.resolve();
            await finishThird.promise;
          }
        } finally {
          inFlight -= 1;
        }
      },
      { intervalMs: 1, firstAfterMs: 0, onError: (error) => errors.push(error) },
    );
    await third.promise;
    const stopped = periodic.stop();
    let stopResolved = false;
    void stopped.then(() => (stopResolved = true));
    await new Promise((resolve) => setImmediate(resolve));
    t.notOk(stopResolved, 'stop() waits while the third pass is in flight');
    finishThird.resolve();
    await stopped;
    t.equal(passes, 3, 'no pass starts after stop()');
    t.equal(mostInFlight, 1, 'one pass at a time');
    t.match(errors, [{ message: 'first pass fails' }], 'the failed pass went to onError, and the loop went on');
  },
);
