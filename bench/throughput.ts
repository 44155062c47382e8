import pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import { resultsChannel } from '../src/ledger/apply.ts';
import { databaseSeconds, highestSeq, resultsAfter, type BenchDatabase } from './database.ts';
import type { CostProbe, Costs } from './costs.ts';
import { enqueueTransfers, type Mix } from './workload.ts';

export interface Phase {
  seconds: number;
  warmupSeconds: number;
  /** Jobs per add_jobs call. */
  chunk: number;
}

interface Counter {
  /** Jobs done so far (cheap enough to ask every 100 ms). */
  done(): Promise<number>;
  /** Exactly, at the window's edges; `done` when that is exact already. */
  exactlyDone?(): Promise<number>;
  enqueue(count: number): Promise<void>;
}

export interface Measured {
  rate: number;
  enqueued: number;
  /** Set when a cost probe watched the window. */
  costs?: Costs;
}

/** Fewest jobs a measured window holds: it runs on past its seconds until it has them, for 2 minutes at most. */
const minimumJobsInWindow = 200;
const windowOvertimeMs = 120_000;

/**
 * Keeps a backlog of at least a few seconds of work queued (add_jobs in big batches, ahead of and
 * during the run) and counts the jobs done between two readings of the database clock after a warm-up.
 * Leaves the feeding stopped; the caller waits for the drain.
 */
async function measure(bench: BenchDatabase, phase: Phase, counter: Counter, probe?: CostProbe): Promise<Measured> {
  let enqueued = 0;
  let rate = 5_000;
  const enqueue = async () => {
    await counter.enqueue(phase.chunk);
    enqueued += phase.chunk;
  };
  for (let i = 0; i < 4; i++) await enqueue();
  let feeding = true;
  const feeder = (async () => {
    let lastDone = 0;
    let lastAt = performance.now();
    while (feeding) {
      const done = await counter.done();
      const now = performance.now();
      if (now - lastAt > 500) {
        rate = Math.max(1_000, ((done - lastDone) * 1000) / (now - lastAt));
        lastDone = done;
        lastAt = now;
      }
      if (enqueued - done < Math.max(4 * phase.chunk, 3 * rate)) await enqueue();
      else await sleep(100);
    }
  })();
  await sleep(phase.warmupSeconds * 1000);
  const exactly = counter.exactlyDone ?? counter.done;
  await probe?.start();
  const started = await databaseSeconds(bench.pool);
  const startDone = await exactly();
  await sleep(phase.seconds * 1000);
  // The window lasts `seconds` and until it holds enough jobs to make a rate of: on a loaded
  // machine a short window could end before the workers had done a single job (a rate of 0).
  for (const deadline = Date.now() + windowOvertimeMs; (await counter.done()) - startDone < minimumJobsInWindow;) {
    if (Date.now() > deadline)
      throw new Error(
        `bench: fewer than ${minimumJobsInWindow} jobs done ${phase.seconds} s + ${windowOvertimeMs} ms into the window`,
      );
    await sleep(100);
  }
  const ended = await databaseSeconds(bench.pool);
  const endDone = await exactly();
  const costs = await probe?.stop();
  feeding = false;
  await feeder;
  return { rate: (endDone - startDone) / (ended - started), enqueued, ...(costs ? { costs } : {}) };
}

/**
 * End to end: transfer commands from add_jobs to committed result rows, with the workers running.
 * `perJob` 1 enqueues one command per job; more makes graphile-worker batch jobs (an array payload
 * of that many commands each), as a producer that sends its commands in bulk would.
 */
export async function endToEnd(
  bench: BenchDatabase,
  phase: Phase,
  mix: Mix,
  prefix: string,
  probe?: CostProbe,
  perJob = 1,
): Promise<Measured> {
  const seq0 = await highestSeq(bench.pool);
  let next = 0;
  const counter: Counter = {
    // seq is handed out under a lock held to commit, so the committed results of this phase are
    // exactly the rows with seq > seq0; a rolled-back batch leaves a gap, so the figure counts rows.
    done: async () => (await highestSeq(bench.pool)) - seq0,
    exactlyDone: () => resultsAfter(bench.pool, seq0),
    enqueue: async (count) => {
      await enqueueTransfers(bench.pool, prefix, next, count, bench.accounts, mix, perJob);
      next += count;
    },
  };
  const measured = await measure(bench, phase, counter, probe);
  await drain(bench, seq0, measured.enqueued);
  return measured;
}

/** Waits until every enqueued command of the phase has its result and the queue is empty. */
export async function drain(bench: BenchDatabase, seq0: number, expected: number, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // Counting rows is O(results): only once the cheap seq distance says the phase may be done.
    const results = (await highestSeq(bench.pool)) - seq0 >= expected ? await resultsAfter(bench.pool, seq0) : 0;
    if (results >= expected) {
      const { rows } = await bench.pool.query<{ n: number }>(
        'select count(*)::int as n from graphile_worker._private_jobs',
      );
      if (rows[0]!.n === 0) return;
    }
    if (Date.now() > deadline) throw new Error(`not drained: ${results} of ${expected} results after ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** Queue ceiling: no-op jobs per second through graphile-worker with the service's settings. */
export async function queueCeiling(bench: BenchDatabase, phase: Phase): Promise<Measured> {
  let enqueued = 0;
  // Counting and enqueueing take turns: a count that ran while an add_jobs committed would see jobs
  // that `enqueued` does not hold yet, and count them as not done.
  let turn: Promise<unknown> = Promise.resolve();
  const inTurn = <T>(work: () => Promise<T>): Promise<T> => {
    const next = turn.then(work);
    turn = next.catch(() => {});
    return next;
  };
  const counter: Counter = {
    done: () =>
      inTurn(async () => {
        const { rows } = await bench.pool.query<{ n: number }>(
          'select count(*)::int as n from graphile_worker._private_jobs',
        );
        return enqueued - rows[0]!.n;
      }),
    enqueue: (count) =>
      inTurn(async () => {
        await bench.pool.query(
          `select count(*) from graphile_worker.add_jobs(array(
        select row('noop', '{}'::json, null, null, null, null, null, null)::graphile_worker.job_spec
        from generate_series(1, $1::int)))`,
          [count],
        );
        enqueued += count;
      }),
  };
  const measured = await measure(bench, phase, counter);
  for (const deadline = Date.now() + 120_000; Date.now() < deadline;) {
    if ((await counter.done()) >= enqueued) break;
    await sleep(200);
  }
  return measured;
}

export interface BurstDrain extends Measured {
  /** Seconds from the start of the first add_jobs to the moment the last result was seen. */
  seconds: number;
  chunks: number;
}

/**
 * The drain of a burst (SPEC 7): `total` transfers enqueued by add_jobs in chunks of `chunk`, one
 * call after the other, while the workers run, timed from the start of the first call to the
 * notification of the batch that brings the phase's results to `total` (a reader LISTENing on
 * billing_results, as a client waits; a slow poll covers a missed notification).
 */
export async function burstDrain(
  bench: BenchDatabase,
  total: number,
  chunk: number,
  mix: Mix,
  prefix: string,
  probe?: CostProbe,
): Promise<BurstDrain> {
  const seq0 = await highestSeq(bench.pool);
  const listener = new pg.Client({ connectionString: bench.url, application_name: 'pg-billing-bench-observer' });
  await listener.connect();
  try {
    let lastSeenAt: number | undefined;
    let checking = false;
    let again: number | undefined;
    let done: () => void = () => {};
    const finished = new Promise<void>((resolve) => (done = resolve));
    // The cheap seq distance first; the exact count only once it says the burst may be done. A
    // wake-up during a check is checked again after it, with its own arrival time.
    const check = async (at: number): Promise<void> => {
      if (lastSeenAt !== undefined) return;
      if (checking) {
        again = at;
        return;
      }
      checking = true;
      try {
        if ((await highestSeq(bench.pool)) - seq0 >= total && (await resultsAfter(bench.pool, seq0)) >= total) {
          lastSeenAt = at;
          done();
        }
      } finally {
        checking = false;
      }
      if (again !== undefined) {
        const next = again;
        again = undefined;
        await check(next);
      }
    };
    // A failed check (a passing fault) is made again by the next wake-up.
    const wake = () => void check(performance.now()).catch(() => {});
    listener.on('notification', wake);
    await listener.query(`listen ${resultsChannel}`);
    const poll = setInterval(wake, 250);
    await probe?.start();
    const started = performance.now();
    try {
      for (let first = 0; first < total; first += chunk) {
        await enqueueTransfers(bench.pool, prefix, first, Math.min(chunk, total - first), bench.accounts, mix);
      }
      await finished;
    } finally {
      clearInterval(poll);
    }
    const seconds = (lastSeenAt! - started) / 1000;
    const costs = await probe?.stop();
    await drain(bench, seq0, total);
    return {
      rate: total / seconds,
      enqueued: total,
      seconds,
      chunks: Math.ceil(total / chunk),
      ...(costs ? { costs } : {}),
    };
  } finally {
    await listener.end().catch(() => {});
  }
}
