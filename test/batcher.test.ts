import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import type { AppliedBatch } from '../src/ledger/apply.ts';
import type { BatchItem } from '../src/ledger/plan.ts';
import type { AppliedOutcome } from '../src/ledger/apply.ts';
import { CommandBatcher } from '../src/worker/batcher.ts';

// The group-commit batcher as a unit: a real CommandBatcher over an apply function that the test
// drives by hand (the unit under test is the batcher, not the database, which every other test
// file uses for real). Each apply call waits until the test settles it, so every step below waits
// on the batcher's state, never on time.

const command = (n: number): BatchItem => ({
  jobId: BigInt(n),
  parsed: {
    ok: true,
    command: { id: `c${n}`, type: 'credit', account: 'a', amount: 1n },
    request: JSON.stringify({ id: `c${n}` }),
    fingerprint: `f${n}`,
  },
});
const idOf = (item: BatchItem) => (item.parsed.ok ? item.parsed.command.id : item.parsed.id);
const appliedTo = (items: BatchItem[]): AppliedBatch => ({
  outcomes: items.map((item, i) => ({
    kind: 'recorded',
    result: { id: idOf(item), type: 'credit', status: 'applied', code: 'ok', message: null, balances: [] },
    seq: BigInt(i + 1),
  })),
  highestSeq: BigInt(items.length),
});
const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

interface Call {
  ids: string[];
  succeed(): void;
  fail(error: unknown): void;
}

/** `promise`, or a failure naming `what` after `ms`: a hang becomes a failure, never a wait on time. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** An apply function whose calls wait for the test; it counts how many are in flight at once. */
class HandDrivenApply {
  readonly calls: Call[] = [];
  inFlight = 0;
  mostInFlight = 0;
  #arrived: (() => void)[] = [];

  readonly apply = (items: BatchItem[]): Promise<AppliedBatch> => {
    this.inFlight++;
    this.mostInFlight = Math.max(this.mostInFlight, this.inFlight);
    const settled = Promise.withResolvers<AppliedBatch>();
    this.calls.push({
      ids: items.map(idOf),
      succeed: () => settled.resolve(appliedTo(items)),
      fail: (error) => settled.reject(error),
    });
    for (const wake of this.#arrived.splice(0)) wake();
    return settled.promise.finally(() => this.inFlight--);
  };

  /** Resolves at the next call the batcher makes. */
  arrival(): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#arrived.push(resolve);
    return promise;
  }

  /** The n-th call (from 0), once the batcher has made it. */
  async call(n: number): Promise<Call> {
    while (this.calls.length <= n) {
      await within(
        this.arrival(),
        5000,
        `apply call ${n} (calls so far: ${JSON.stringify(this.calls.map((c) => c.ids))})`,
      );
    }
    return this.calls[n]!;
  }
}

function batcherOver(
  apply: HandDrivenApply['apply'],
  options: { maxBatchSize?: number; maxConcurrentBatches?: number; maxWaitMs?: number; maxPending?: number } = {},
) {
  const batches: { size: number; error?: unknown }[] = [];
  const batcher = new CommandBatcher({
    apply,
    maxBatchSize: options.maxBatchSize ?? 10,
    maxConcurrentBatches: options.maxConcurrentBatches ?? 1,
    maxWaitMs: options.maxWaitMs ?? 0,
    ...(options.maxPending === undefined ? {} : { maxPending: options.maxPending }),
    onBatch: (size, _ms, error) => batches.push({ size, ...(error === undefined ? {} : { error }) }),
  });
  return { batcher, batches };
}

/**
 * What became of each submitted command: its outcome's id, or the error it was failed with. Call it
 * as soon as the commands are submitted, so that no failure is left unhandled while the test runs.
 */
async function settle(submitted: Promise<AppliedOutcome>[]): Promise<(string | Error)[]> {
  const settled = await Promise.allSettled(submitted);
  return settled.map((s) =>
    s.status === 'fulfilled'
      ? s.value.kind === 'recorded'
        ? s.value.result.id
        : `not recorded: ${s.value.kind}`
      : (s.reason as Error),
  );
}

/**
 * Submits a first command alone (its call holds the one slot), then `rest` while it is in flight,
 * then lets the first through: `rest` leaves as one batch, call 1.
 */
async function oneBatchOf(fake: HandDrivenApply, batcher: CommandBatcher, rest: number[]) {
  const first = batcher.submit(command(0));
  const firstCall = await fake.call(0);
  const settled = settle(rest.map((n) => batcher.submit(command(n))));
  firstCall.succeed();
  await first;
  const call = await fake.call(1);
  return { call, settled };
}

const transientFaults: [string, Error][] = [
  ['serialization failure (40001)', withCode('could not serialize access', '40001')],
  ['deadlock (40P01)', withCode('deadlock detected', '40P01')],
  ['connection failure (class 08)', withCode('connection failure', '08006')],
  ['admin shutdown (57P01)', withCode('terminating connection due to administrator command', '57P01')],
  ['a dropped socket (ECONNRESET)', withCode('read ECONNRESET', 'ECONNRESET')],
  ['pg: Connection terminated', new Error('Connection terminated unexpectedly')],
];

for (const [name, fault] of transientFaults) {
  t.test(`a transient fault (${name}) fails the whole batch, which is not split`, async (t) => {
    const fake = new HandDrivenApply();
    const { batcher, batches } = batcherOver(fake.apply);
    const { call, settled } = await oneBatchOf(fake, batcher, [1, 2, 3, 4]);
    t.same(call.ids, ['c1', 'c2', 'c3', 'c4'], 'four commands in one transaction');
    call.fail(fault);
    t.same(
      await within(settled, 5000, 'the answers'),
      [fault, fault, fault, fault],
      'each command fails with the fault (graphile-worker retries its job)',
    );
    // Had the batch been split, its singles would take the one slot before this command.
    const after = batcher.submit(command(5));
    const next = await fake.call(2);
    t.same(next.ids, ['c5'], 'the next call is the next command, not a retry of the failed batch');
    next.succeed();
    await after;
    t.equal(fake.calls.length, 3);
    t.same(
      batches.map((b) => [b.size, b.error === fault]),
      [
        [1, false],
        [4, true],
        [1, false],
      ],
    );
  });
}

t.test('a fault that is not transient splits the batch: only the poisonous command fails', async (t) => {
  const fake = new HandDrivenApply();
  const { batcher, batches } = batcherOver(fake.apply);
  const { call, settled } = await oneBatchOf(fake, batcher, [1, 2, 3, 4, 5]);
  const poison = withCode('value too long for type character varying(64)', '22001');
  call.fail(poison);
  // One at a time, in order, each in a transaction of its own.
  for (const [index, id] of ['c1', 'c2', 'c3', 'c4', 'c5'].entries()) {
    const single = await fake.call(2 + index);
    t.same(single.ids, [id], `${id} alone`);
    if (id === 'c3') single.fail(poison);
    else single.succeed();
  }
  t.same(
    await within(settled, 5000, 'the answers'),
    ['c1', 'c2', poison, 'c4', 'c5'],
    'the others are applied; the poisonous one fails',
  );
  t.equal(fake.calls.length, 7, 'no call beyond the batch and its five singles');
  t.same(
    batches.map((b) => [b.size, b.error === poison]),
    [
      [1, false],
      [5, true],
      [1, false],
      [1, false],
      [1, true],
      [1, false],
      [1, false],
    ],
  );
  t.equal(fake.mostInFlight, 1, "the singles run one after another in the batch's slot");
});

t.test('a split batch whose fault does not come back: every command is applied', async (t) => {
  const fake = new HandDrivenApply();
  const { batcher } = batcherOver(fake.apply);
  const { call, settled } = await oneBatchOf(fake, batcher, [1, 2, 3]);
  call.fail(new TypeError("Cannot read properties of undefined (reading 'rows')"));
  for (let i = 0; i < 3; i++) (await fake.call(2 + i)).succeed();
  t.same(await within(settled, 5000, 'the answers'), ['c1', 'c2', 'c3']);
});

t.test('in a split batch, a transient fault of one single fails only that command', async (t) => {
  const fake = new HandDrivenApply();
  const { batcher } = batcherOver(fake.apply);
  const { call, settled } = await oneBatchOf(fake, batcher, [1, 2, 3]);
  call.fail(new RangeError('Invalid array length'));
  const lost = withCode('terminating connection due to administrator command', '57P01');
  (await fake.call(2)).succeed();
  (await fake.call(3)).fail(lost);
  (await fake.call(4)).succeed();
  t.same(await within(settled, 5000, 'the answers'), ['c1', lost, 'c3']);
});

t.test('a lone command with a fault that is not transient fails once, without a retry', async (t) => {
  const fake = new HandDrivenApply();
  const { batcher } = batcherOver(fake.apply);
  const settled = settle([batcher.submit(command(1))]);
  const boom = new Error('boom');
  (await fake.call(0)).fail(boom);
  t.same(await within(settled, 5000, 'the answers'), [boom]);
  const after = batcher.submit(command(2));
  const next = await fake.call(1);
  t.same(next.ids, ['c2'], 'the next call is the next command');
  next.succeed();
  await after;
});

t.test(
  'concurrency: at most maxConcurrentBatches transactions, at most maxBatchSize commands each, in order',
  async (t) => {
    const fake = new HandDrivenApply();
    const { batcher } = batcherOver(fake.apply, { maxBatchSize: 3, maxConcurrentBatches: 2 });
    const poison = new Error('poisonous');
    const settled = settle(Array.from({ length: 20 }, (_, n) => batcher.submit(command(n))));
    t.equal(batcher.inFlight, 2, 'two transactions started at once');
    t.equal(batcher.queued, 20 - fake.calls.flatMap((c) => c.ids).length, 'the rest wait in the queue');
    // Settle the calls in the order they come, until every command has its answer: the call holding
    // c7 fails and is split, and c7 fails alone.
    const allAnswered = settled.then(() => true);
    for (let n = 0; ; n++) {
      while (fake.calls.length <= n) {
        if (await within(Promise.race([allAnswered, fake.arrival().then(() => false)]), 5000, `call ${n}`)) break;
      }
      if (fake.calls.length <= n) break;
      const call = fake.calls[n]!;
      t.ok(fake.inFlight <= 2, `call ${n} (${call.ids.join(' ')}) made with ${fake.inFlight} in flight`);
      if (call.ids.includes('c7')) call.fail(poison);
      else call.succeed();
    }
    const results = await within(settled, 5000, 'the answers');
    t.same(
      results,
      Array.from({ length: 20 }, (_, n) => (n === 7 ? poison : `c${n}`)),
      'each command gets its own outcome',
    );
    t.equal(fake.mostInFlight, 2, 'two in flight at most, and the limit was reached');
    t.ok(
      fake.calls.every((c) => c.ids.length >= 1 && c.ids.length <= 3),
      'batches of 1 to 3',
    );
    const firstAttempts = fake.calls.filter(
      (c) => c.ids.length > 1 || !fake.calls.some((b) => b.ids.length > 1 && b.ids.includes(c.ids[0]!)),
    );
    t.same(
      firstAttempts.flatMap((c) => c.ids),
      results.map((_, n) => `c${n}`),
      'commands leave the queue in the order they came',
    );
  },
);

t.test('commands submitted in one tick while nothing is in flight share one transaction', async (t) => {
  // As graphile-worker starts the jobs of one fetch: together, each in its own promise chain.
  const fake = new HandDrivenApply();
  const { batcher } = batcherOver(fake.apply, { maxBatchSize: 4 });
  const settled = settle([0, 1, 2, 3, 4, 5].map((n) => Promise.resolve().then(() => batcher.submit(command(n)))));
  const first = await fake.call(0);
  t.same(first.ids, ['c0', 'c1', 'c2', 'c3'], 'one batch, up to maxBatchSize');
  first.succeed();
  const second = await fake.call(1);
  t.same(second.ids, ['c4', 'c5'], 'the rest in the next');
  second.succeed();
  t.same(await within(settled, 5000, 'the answers'), ['c0', 'c1', 'c2', 'c3', 'c4', 'c5']);
});

t.test('maxWaitMs: a batch waits to fill only while another is in flight, and never beyond the limits', async (t) => {
  const waitMs = 20;
  const fake = new HandDrivenApply();
  const { batcher } = batcherOver(fake.apply, { maxBatchSize: 2, maxConcurrentBatches: 2, maxWaitMs: waitMs });
  const settled = settle([batcher.submit(command(0))]);
  t.same(fake.calls, [], 'nothing in flight: a lone command waits for the end of the tick');
  await fake.call(0);
  t.same(
    fake.calls.map((c) => c.ids),
    [['c0']],
    'a lone command leaves at the end of the tick, without waiting on time',
  );
  // With a batch in flight apply is called synchronously from submit, so each count below is read
  // with nothing in between.
  const more = settle([1, 2, 3].map((n) => batcher.submit(command(n))));
  t.same(
    fake.calls.map((c) => c.ids),
    [['c0'], ['c1', 'c2']],
    'c1 waited for c2; a full batch leaves at once',
  );
  t.equal(batcher.queued, 1, 'c3 waits: two transactions are in flight');
  // Node runs timers of one delay in the order they were set: once this one fires, the batcher's
  // fill timer (set when c1 arrived) has fired too, with both slots still taken.
  await sleep(waitMs);
  t.equal(fake.calls.length, 2, 'the fill timer started nothing beyond the two in flight');
  fake.calls[0]!.succeed();
  t.same((await fake.call(2)).ids, ['c3'], 'c3 leaves when a slot frees');
  fake.calls[1]!.succeed();
  fake.calls[2]!.succeed();
  t.same([...(await within(settled, 5000, 'c0')), ...(await within(more, 5000, 'c1 to c3'))], ['c0', 'c1', 'c2', 'c3']);
  t.equal(fake.mostInFlight, 2);
});

t.test('maxPending: commands beyond it wait for room, in order, and all are applied', async (t) => {
  const fake = new HandDrivenApply();
  const { batcher } = batcherOver(fake.apply, { maxBatchSize: 3, maxConcurrentBatches: 1, maxPending: 4 });
  // Ten commands at once, as one batch job of ten would hand them over.
  const settled = settle(Array.from({ length: 10 }, (_, n) => batcher.submit(command(n))));
  const seen: string[] = [];
  for (let n = 0; seen.length < 10; n++) {
    const call = await fake.call(n);
    t.ok(
      batcher.pending <= 4,
      `call ${n}: at most maxPending commands held (${batcher.pending}), the rest wait outside`,
    );
    t.ok(call.ids.length <= 3, `call ${n}: at most maxBatchSize commands`);
    seen.push(...call.ids);
    call.succeed();
  }
  t.same(
    seen,
    Array.from({ length: 10 }, (_, n) => `c${n}`),
    'each command once, in the order submitted',
  );
  t.same(
    await within(settled, 5000, 'the answers'),
    Array.from({ length: 10 }, (_, n) => `c${n}`),
    'every command applied',
  );
  t.equal(batcher.pending, 0);
});

t.test(
  'an expiry goes ahead of the queued commands and past maxPending, in arrival order among expiries',
  async (t) => {
    const fake = new HandDrivenApply();
    const { batcher } = batcherOver(fake.apply, { maxBatchSize: 3, maxConcurrentBatches: 1, maxPending: 4 });
    const expiry = (hold: string): BatchItem => ({
      jobId: null,
      parsed: {
        ok: true,
        command: { id: `expire:${hold}`, type: 'expire', hold },
        request: JSON.stringify({ hold }),
        fingerprint: `f-${hold}`,
      },
    });
    // c0 holds the one slot; c1-c3 fill maxPending; c4-c5 wait outside for room.
    const commands = [batcher.submit(command(0))];
    const first = await fake.call(0);
    t.same(first.ids, ['c0']);
    commands.push(...Array.from({ length: 5 }, (_, n) => batcher.submit(command(n + 1))));
    const expiries = [batcher.submit(expiry('h1')), batcher.submit(expiry('h2'))];
    t.equal(batcher.pending, 6, 'the expiries did not wait for room under maxPending (4)');
    first.succeed();
    const second = await fake.call(1);
    t.same(second.ids, ['expire:h1', 'expire:h2', 'c1'], 'the expiries come first, in their own order');
    second.succeed();
    const seen = [...first.ids, ...second.ids];
    for (let n = 2; seen.length < 8; n++) {
      const call = await fake.call(n);
      seen.push(...call.ids);
      call.succeed();
    }
    t.same(seen.slice(4), ['c2', 'c3', 'c4', 'c5'], 'then the other commands, in order');
    t.same(
      await within(settle([...commands, ...expiries]), 5000, 'the answers'),
      ['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'expire:h1', 'expire:h2'],
      'every command and expiry applied',
    );
  },
);

t.test(
  "a command of a lower priority goes ahead of the queued ones and of those waiting for room (another login's)",
  async (t) => {
    const fake = new HandDrivenApply();
    const { batcher } = batcherOver(fake.apply, { maxBatchSize: 3, maxConcurrentBatches: 1, maxPending: 4 });
    // c0 holds the one slot; c1-c3 (a burst's, priority 5) fill maxPending; c4-c5 wait for room.
    const commands = [batcher.submit(command(0), 5)];
    const first = await fake.call(0);
    commands.push(...[1, 2, 3, 4, 5].map((n) => batcher.submit(command(n), 5)));
    // Another login's command, and one waiting for room behind c4-c5.
    commands.push(batcher.submit(command(6), 0));
    t.equal(batcher.queued, 3, 'c6 waits for room too');
    commands.push(batcher.submit(command(7), 1));
    first.succeed();
    const second = await fake.call(1);
    t.same(second.ids, ['c6', 'c1', 'c2'], "c6 got c0's room first, and went ahead of the burst queued before it");
    second.succeed();
    const third = await fake.call(2);
    t.same(third.ids, ['c7', 'c3', 'c4'], 'c7 too, although c4-c5 were waiting for room before it');
    third.succeed();
    const fourth = await fake.call(3);
    t.same(fourth.ids, ['c5']);
    fourth.succeed();
    t.same(
      await within(settle(commands), 5000, 'the answers'),
      ['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7'],
      'every command applied',
    );
  },
);

t.test('the next batch takes the commands that the answered tasks hand in as they finish', async (t) => {
  // graphile-worker starts a finished task slot's next job in the same turn as the commit's answers:
  // that job's command, of a lower priority, must make the very next batch.
  const fake = new HandDrivenApply();
  const { batcher } = batcherOver(fake.apply, { maxBatchSize: 2, maxConcurrentBatches: 1 });
  const next: Promise<AppliedOutcome>[] = [];
  const first = batcher.submit(command(0), 5).then((outcome) => {
    next.push(batcher.submit(command(9), 0));
    return outcome;
  });
  const call0 = await fake.call(0);
  const queued = [1, 2, 3].map((n) => batcher.submit(command(n), 5));
  call0.succeed();
  const call1 = await fake.call(1);
  t.same(call1.ids, ['c9', 'c1'], "the slot's next command went into the next batch, ahead");
  call1.succeed();
  const call2 = await fake.call(2);
  t.same(call2.ids, ['c2', 'c3']);
  call2.succeed();
  t.same(await within(settle([first, ...queued, ...next]), 5000, 'the answers'), ['c0', 'c1', 'c2', 'c3', 'c9']);
});

t.test('room freed by a commit goes first to the lower priority among the answered tasks’ next commands', async (t) => {
  const fake = new HandDrivenApply();
  const { batcher } = batcherOver(fake.apply, { maxBatchSize: 2, maxConcurrentBatches: 1, maxPending: 2 });
  const next: Promise<AppliedOutcome>[] = [];
  // c0-c1 in flight fill maxPending; c2-c4 (the burst's) wait for room. When c0 is answered, its
  // task hands in another login's command, c9: it gets room before c3-c4, which came first.
  const first = batcher.submit(command(0), 5).then((outcome) => {
    next.push(batcher.submit(command(9), 0));
    return outcome;
  });
  const second = batcher.submit(command(1), 5);
  const call0 = await fake.call(0);
  const waiting = [2, 3, 4].map((n) => batcher.submit(command(n), 5));
  call0.succeed();
  const call1 = await fake.call(1);
  t.same(call1.ids, ['c9', 'c2'], 'c9 let in first and cut first');
  call1.succeed();
  const call2 = await fake.call(2);
  t.same(call2.ids, ['c3', 'c4']);
  call2.succeed();
  t.same(await within(settle([first, second, ...waiting, ...next]), 5000, 'the answers'), [
    'c0',
    'c1',
    'c2',
    'c3',
    'c4',
    'c9',
  ]);
});
