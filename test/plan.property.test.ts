import fc from 'fast-check';
import t from 'tap';
import { resultCodes } from '../src/commands/contract.ts';
import type { Command } from '../src/commands/command.ts';
import { parseCommand } from '../src/commands/parse.ts';
import { decide } from '../src/commands/command.ts';
import { type BatchItem, type BatchPlan, type EarlierResults, type EntryRow, planBatch } from '../src/ledger/plan.ts';
import {
  defaultPolicy,
  type AccountState,
  type HoldState,
  type LedgerView,
  type OperationState,
} from '../src/commands/decision.ts';
import {
  account,
  type CommandSpec,
  invalidCommands,
  opening,
  type Payload,
  reverseCommand,
  transactionCommand,
  samePayload,
  spec,
  type Step,
  step,
  stringify,
  type Task,
  validCommand,
} from './helpers/command-arbitraries.ts';
import { ReferenceLedger, type Prediction } from '../model/reference-ledger.ts';

// planBatch as pure code, against the reference model: runs of random batches (hold expiry with
// ttl_seconds and expires_at, a clock that moves between batches, the expiry jobs the plans
// schedule, replays, id conflicts, invalid commands), no database. Each batch is parsed by the
// real parser, planned against the rows a batch would lock, and its plan written to an in-memory
// ledger that keeps the database's unique keys and CHECKs. The next batch reads from that ledger
// alone, so a change that a plan forgets to describe shows up as a difference from the model.
//
// Each property runs once with a fixed seed and once with a random one. Reproduce a failure with
// FC_SEED=<seed> FC_PATH=<path> from its message (then only that seed runs); FC_RUNS sets the runs.

const defaultCurrency = 'USD';
const start = Date.parse('2026-03-01T12:00:00.000Z');
const second = 1000;
const day = 24 * 60 * 60 * second;
const maxInt64 = 2n ** 63n - 1n;

type PlanStep = Step | { kind: 'due' };
interface BatchSpec {
  advanceMs: number;
  steps: PlanStep[];
  lockAll: boolean;
}

/** The instant `ms` written in another zone: the same instant, another text. */
function timestampAt(ms: number, zone: 'Z' | '+02:00' | '-05:30'): string {
  if (zone === 'Z') return new Date(ms).toISOString();
  const offsetMs = (zone === '+02:00' ? 120 : -330) * 60 * 1000;
  return `${new Date(ms + offsetMs).toISOString().slice(0, 23)}${zone}`;
}

// Expiries near the clock (which starts at `start` and moves up to a few seconds a batch), some
// already past when the hold arrives, some at the 30-day limit, and ttl_seconds.
const expiry: fc.Arbitrary<Payload> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({}) },
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 8 }).map((ttl) => ({ ttl_seconds: ttl })) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(
        fc.integer({ min: -5 * second, max: 30 * second }),
        fc.constantFrom('Z', '+02:00', '-05:30') as fc.Arbitrary<'Z' | '+02:00' | '-05:30'>,
      )
      .map(([offset, zone]) => ({ expires_at: timestampAt(start + offset, zone) })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(30 * day, 30 * day + 1, 31 * day)
      .map((offset) => ({ expires_at: timestampAt(start + offset, 'Z') })),
  },
  { weight: 1, arbitrary: fc.constant({ ttl_seconds: 30 * 24 * 60 * 60 }) },
);

// Besides the commands of a client: the service's own expiry of a hold, due or not (an expiry job
// may run early, or twice), and commands without an id (the service gives them the job's).
const valid = validCommand(expiry, [
  { weight: 2, arbitrary: fc.nat().map((holdRef): CommandSpec => ({ task: 'expire_hold', fields: {}, holdRef })) },
  {
    weight: 1,
    arbitrary: fc
      .record({ account, amount: fc.integer({ min: 1, max: 50 }) })
      .map((fields): CommandSpec => ({ ...spec('credit')(fields), withoutId: true })),
  },
  { weight: 3, arbitrary: transactionCommand },
  { weight: 3, arbitrary: reverseCommand },
]);

const invalid = fc.constantFrom<CommandSpec>(
  ...invalidCommands,
  { task: 'hold', fields: { account: 'a', amount: '5', expires_at: timestampAt(start - second, '+02:00') } },
  // An id that cannot be one: the answer goes under the job's id.
  { task: 'credit', fields: { id: 7, account: 'a', amount: '5' } },
  { task: 'credit', fields: { id: 'x'.repeat(129), account: 'a', amount: '5' } },
);

// The clock stands still, moves by whole seconds (so that ttl_seconds expiries fall exactly on it)
// or by any number of milliseconds.
const advance = fc.oneof(fc.constantFrom(0, second, 2 * second), fc.integer({ min: 1, max: 9 * second }));
const batch: fc.Arbitrary<BatchSpec> = fc.record({
  advanceMs: advance,
  steps: fc.array(
    fc.oneof(
      { weight: 17, arbitrary: step(valid, invalid) },
      { weight: 1, arbitrary: fc.constant<PlanStep>({ kind: 'due' }) },
    ),
    { minLength: 1, maxLength: 12 },
  ),
  lockAll: fc.boolean(),
});

interface Job {
  task: Task;
  payload: Payload;
  jobId: bigint;
}

const byAccount = <T extends { account: string }>(list: T[]) =>
  [...list].sort((x, y) => (x.account < y.account ? -1 : x.account > y.account ? 1 : 0));
/** Rows as one line of text, to compare (faster than JSON, which cannot take a bigint anyway). */
const rowsText = (rows: { account: string }[]) =>
  byAccount(rows)
    .map((row) => Object.values(row).map(String).join('/'))
    .join(' ');

/**
 * What the database keeps between batches, written only from plans, with the database's unique
 * keys and CHECK constraints; and graphile-worker's expiry jobs (one per hold, by job_key).
 */
class PlannedLedger {
  readonly accounts = new Map<string, AccountState>();
  readonly holds = new Map<string, HoldState>();
  readonly results: EarlierResults = new Map();
  readonly journal: EntryRow[] = [];
  readonly expiryJobs = new Map<string, number>();
  /** billing.reversal_totals: what reversals put back of a command, never more than its total. */
  readonly reversalTotals = new Map<string, { total: bigint; reversed: bigint }>();
  #seq = 0n;

  /** The rows a batch locks: all of them, or only those its commands name (and their holds' accounts). */
  readFor(items: BatchItem[], lockAll: boolean, now: number): { existing: EarlierResults; view: LedgerView } {
    const accountIds = new Set<string>();
    const holdIds = new Set<string>();
    const operationIds = new Set<string>();
    const existing: EarlierResults = new Map();
    for (const { parsed } of items) {
      const id = parsed.ok ? parsed.command.id : parsed.id;
      const stored = this.results.get(id);
      if (stored) existing.set(id, stored);
      if (!parsed.ok) continue;
      const c = parsed.command;
      if ('account' in c) accountIds.add(c.account);
      if (c.type === 'transfer') {
        accountIds.add(c.from);
        accountIds.add(c.to);
      }
      if (c.type === 'capture' && c.to !== undefined) accountIds.add(c.to);
      if ('hold' in c) holdIds.add(c.hold);
      if (c.type === 'transaction') for (const l of c.legs) for (const a of [l.from, l.to]) if (a) accountIds.add(a);
      if (c.type === 'reverse') operationIds.add(c.of);
    }
    // A reversal's accounts are those of the command it names, read from the journal.
    const operations = new Map<string, OperationState>();
    for (const id of operationIds) {
      const stored = this.results.get(id);
      if (!stored) continue;
      const moves = this.journal
        .filter((e) => e.operationId === id && e.balanceDelta !== 0n)
        .map((e) => ({ account: e.account, balanceDelta: e.balanceDelta }));
      for (const move of moves) accountIds.add(move.account);
      operations.set(id, { id, type: stored.result.type, status: stored.result.status, moves });
    }
    const reversals = new Map([...this.reversalTotals].filter(([id]) => operationIds.has(id)));
    for (const hold of holdIds) {
      const row = this.holds.get(hold);
      if (row) accountIds.add(row.account);
    }
    const accounts = new Map<string, AccountState>();
    for (const [id, row] of this.accounts) if (lockAll || accountIds.has(id)) accounts.set(id, { ...row });
    const holds = new Map<string, HoldState>();
    for (const [id, row] of this.holds) if (lockAll || holdIds.has(id)) holds.set(id, { ...row });
    return { existing, view: { accounts, holds, now: new Date(now), operations, reversals } };
  }

  write(plan: BatchPlan, now: number): void {
    for (const { account, currency } of plan.openedAccounts) {
      if (this.accounts.has(account)) throw new Error(`duplicate key: account ${account}`);
      this.accounts.set(account, { account, currency, balance: 0n, held: 0n, ...defaultPolicy });
    }
    for (const [account, after] of plan.changedAccounts) {
      const row = this.accounts.get(account);
      if (!row || after.account !== account) throw new Error(`update of a missing account ${account}`);
      if (breaksAccountChecks(after)) throw new Error(`CHECK violated on ${account}: ${stringify(after)}`);
      Object.assign(row, after);
    }
    for (const { operationId: _, ...hold } of plan.createdHolds) {
      if (this.holds.has(hold.hold)) throw new Error(`duplicate key: hold ${hold.hold}`);
      if (hold.status !== 'active') throw new Error(`hold ${hold.hold} created ${hold.status}`);
      this.holds.set(hold.hold, hold);
    }
    for (const closed of plan.closedHolds) {
      const row = this.holds.get(closed.hold);
      if (!row || row.status !== 'active') throw new Error(`hold ${closed.hold} closed twice or missing`);
      row.status = closed.status;
    }
    for (const entry of plan.entries) {
      const before = this.journal.findLast((e) => e.account === entry.account);
      if (
        entry.balanceAfter !== (before?.balanceAfter ?? 0n) + entry.balanceDelta ||
        entry.heldAfter !== (before?.heldAfter ?? 0n) + entry.heldDelta
      ) {
        throw new Error(`journal chain broken on ${entry.account} by ${entry.operationId}`);
      }
      // CHECK entry_within_limits, and the limits are the account's as the model has them then.
      if (
        entry.heldAfter < 0n ||
        entry.balanceAfter - entry.heldAfter < -entry.overdraftLimit ||
        (entry.maxBalance !== null && entry.balanceAfter > entry.maxBalance)
      )
        throw new Error(`CHECK entry_within_limits violated by ${entry.operationId}: ${stringify(entry)}`);
      this.journal.push(entry);
    }
    for (const operation of plan.operations) {
      if (this.results.has(operation.id)) throw new Error(`duplicate key: result ${operation.id}`);
      const { id, type, status, code, message, balances, jobId, fingerprint } = operation;
      if (code === 'id_conflict') throw new Error(`check code_known: result ${id} stored as id_conflict`);
      const seq = ++this.#seq;
      const result = { id, seq, type, status, code, message, balances, job_id: jobId, created_at: new Date(now) };
      this.results.set(id, { result, fingerprint });
    }
    for (const { hold, runAt } of plan.expiries) this.expiryJobs.set(hold, runAt.getTime());
    for (const [of, { total, amount }] of plan.reversed) {
      const reversed = (this.reversalTotals.get(of)?.reversed ?? 0n) + amount;
      if (!this.results.has(of)) throw new Error(`reversal total of ${of}, which has no result`);
      if (amount <= 0n || reversed > total) throw new Error(`CHECK violated: ${of} reversed ${reversed} of ${total}`);
      this.reversalTotals.set(of, { total, reversed });
    }
  }

  /** graphile-worker hands out the expiry jobs whose run_at has come; each runs once. */
  takeDueExpiries(now: number): string[] {
    const due = [...this.expiryJobs]
      .filter(([, runAt]) => runAt <= now)
      .map(([hold]) => hold)
      .sort();
    for (const hold of due) this.expiryJobs.delete(hold);
    return due;
  }
}

/** The CHECKs of billing.accounts (sql/0001, sql/0024). */
function breaksAccountChecks(row: Omit<AccountState, 'currency'>): boolean {
  return (
    row.held < 0n ||
    // bigint columns: a value outside int8 fails the batch's statement, again on every retry.
    row.held > maxInt64 ||
    row.balance < -maxInt64 - 1n ||
    row.balance > maxInt64 ||
    row.overdraftLimit < 0n ||
    row.balance - row.held < -row.overdraftLimit ||
    (row.maxBalance !== null && (row.maxBalance < 0n || row.balance > row.maxBalance)) ||
    !['open', 'frozen', 'closed'].includes(row.status) ||
    (row.status === 'closed' && (row.balance !== 0n || row.held !== 0n))
  );
}

/** One run: batches through planBatch and the model side by side. Throws at the first difference. */
class Run {
  readonly model = new ReferenceLedger(defaultCurrency, start);
  readonly ledger = new PlannedLedger();
  readonly jobs: Job[] = [];
  readonly holdIds: string[] = [];
  now = start;
  #nextJobId = 1n;

  /** Gives each step a concrete job: new commands a fresh id, repeats and reuses an earlier one. */
  jobsFor(steps: PlanStep[]): Job[] {
    const jobs: Job[] = [];
    const add = (task: Task, payload: Payload) => {
      const job = { task, payload, jobId: this.#nextJobId++ };
      jobs.push(job);
      if (task !== 'expire_hold') this.jobs.push(job);
      // The hold id the service gives it: `hold`, else the command's id, else (none, or unusable) the job's.
      const usableId = typeof payload.id === 'string' && payload.id.length >= 1 && payload.id.length <= 128;
      if (task === 'hold')
        this.holdIds.push(
          typeof payload.hold === 'string' ? payload.hold : usableId ? (payload.id as string) : `job:${job.jobId}`,
        );
    };
    const fields = (s: CommandSpec): Payload => {
      if (s.opRef !== undefined) {
        // An earlier command's id (the service's job: id for one sent without an id), the next
        // command's (not sent yet), or one never sent.
        const ids = this.jobs.map((job) => (typeof job.payload.id === 'string' ? job.payload.id : `job:${job.jobId}`));
        const candidates = [...ids, `c${this.jobs.length + 2}`, 'never-sent'];
        return { of: candidates[s.opRef % candidates.length], ...s.fields };
      }
      return s.holdRef === undefined
        ? s.fields
        : { hold: this.holdIds[s.holdRef % Math.max(1, this.holdIds.length)] ?? 'h9', ...s.fields };
    };
    for (const s of steps) {
      if (s.kind === 'due') {
        for (const hold of this.ledger.takeDueExpiries(this.now)) add('expire_hold', { hold });
      } else if (s.kind === 'new' || this.jobs.length === 0) {
        const { task, withoutId } = s.kind === 'new' ? s.spec : { task: 'credit' as const, withoutId: false };
        const payload = s.kind === 'new' ? fields(s.spec) : { account: 'a', amount: '1' };
        add(
          task,
          task === 'expire_hold' || withoutId || 'id' in payload
            ? payload
            : { id: `c${this.jobs.length + 1}`, ...payload },
        );
      } else if (s.kind === 'repeat') {
        const earlier = this.jobs[s.of % this.jobs.length]!;
        add(earlier.task, samePayload(earlier.payload, s.reorder));
      } else {
        // Only an id the client chose: a job's own id (`job:...`) is the service's, never a client's.
        const earlier = this.jobs[s.of % this.jobs.length]!;
        const id = typeof earlier.payload.id === 'string' ? earlier.payload.id : `c${this.jobs.length + 1}`;
        add(s.spec.task === 'expire_hold' ? 'release' : s.spec.task, { ...fields(s.spec), id });
      }
    }
    return jobs;
  }

  batch(jobs: Job[], lockAll: boolean): void {
    if (jobs.length === 0) return;
    commandsPlanned += jobs.length;
    const items: BatchItem[] = jobs.map((job) => ({
      jobId: job.jobId,
      parsed: parseCommand({ task: job.task, payload: job.payload, defaultId: `job:${job.jobId}`, defaultCurrency }),
    }));
    const predictions = jobs.map((job) => this.model.submit(job.task, job.payload, `job:${job.jobId}`));
    tally(jobs, predictions);
    const { existing, view } = this.ledger.readFor(items, lockAll, this.now);
    const plan = planBatch(items, existing, view);
    const describe = (i: number) =>
      `${jobs[i]!.task} ${stringify(jobs[i]!.payload)} (job ${jobs[i]!.jobId}, clock +${this.now - start} ms)`;
    if (plan.outcomes.length !== jobs.length)
      throw new Error(`${plan.outcomes.length} outcomes for ${jobs.length} commands`);
    plan.outcomes.forEach((outcome, i) => checkOutcome(outcome, predictions[i]!, items[i]!, plan, describe(i)));
    const recorded = predictions.filter((p) => p.kind === 'result').length;
    if (plan.operations.length !== recorded)
      throw new Error(`${plan.operations.length} result rows planned, the model says ${recorded}`);
    const conflicts = plan.conflicts.map((c) => c.jobId);
    const expectedConflicts = predictions.flatMap((p, i) => (p.kind === 'conflict' ? [jobs[i]!.jobId] : []));
    if (conflicts.join() !== expectedConflicts.join())
      throw new Error(`id conflicts of jobs ${stringify(conflicts)}, the model says ${stringify(expectedConflicts)}`);
    for (const hold of plan.createdHolds) {
      const scheduled =
        hold.expiresAt &&
        plan.expiries.some((e) => e.hold === hold.hold && e.runAt.getTime() === hold.expiresAt!.getTime());
      if (hold.expiresAt && !scheduled)
        throw new Error(`hold ${hold.hold} expires at ${hold.expiresAt.toISOString()} with no expiry job`);
    }
    this.ledger.write(plan, this.now);
    this.compareLedger();
  }

  compareLedger(): void {
    const accounts = [...this.ledger.accounts.values()].map(
      ({ account, currency, balance, held, overdraftLimit, maxBalance, status }) => ({
        account,
        currency,
        balance,
        held,
        overdraftLimit,
        maxBalance,
        status,
      }),
    );
    const expectedAccounts = [...this.model.accounts].map(([name, a]) => ({
      account: name,
      currency: a.currency,
      balance: a.balance,
      held: a.held,
      overdraftLimit: a.overdraftLimit,
      maxBalance: a.maxBalance,
      status: a.status,
    }));
    const holds = [...this.ledger.holds.values()].map((h) => ({
      account: h.hold,
      owner: h.account,
      amount: h.amount,
      status: h.status,
      expiresAt: h.expiresAt?.getTime() ?? null,
    }));
    const expectedHolds = [...this.model.holds].map(([hold, h]) => ({
      account: hold,
      owner: h.account,
      amount: h.amount,
      status: h.status,
      expiresAt: h.expiresAt,
    }));
    const actual = `accounts ${rowsText(accounts)}; holds ${rowsText(holds)}`;
    const expected = `accounts ${rowsText(expectedAccounts)}; holds ${rowsText(expectedHolds)}`;
    if (actual !== expected)
      throw new Error(
        `ledger differs from the model at clock +${this.now - start} ms\n  model:  ${expected}\n  plans:  ${actual}`,
      );
  }

  /** The journal alone gives every balance: the sum of an account's entries is its row. */
  checkJournal(): void {
    for (const row of this.ledger.accounts.values()) {
      const entries = this.ledger.journal.filter((e) => e.account === row.account);
      const balance = entries.reduce((sum, e) => sum + e.balanceDelta, 0n);
      const held = entries.reduce((sum, e) => sum + e.heldDelta, 0n);
      if (balance !== row.balance || held !== row.held)
        throw new Error(
          `journal of ${row.account} sums to ${balance}/${held}, the row says ${row.balance}/${row.held}`,
        );
    }
  }
}

function checkOutcome(
  outcome: BatchPlan['outcomes'][number],
  predicted: Prediction,
  item: BatchItem,
  plan: BatchPlan,
  describe: string,
): void {
  const id = item.parsed.ok ? item.parsed.command.id : item.parsed.id;
  const fail = (got: string) => {
    throw new Error(`${describe}: the model says ${stringify(predicted)}, planBatch ${got}`);
  };
  switch (predicted.kind) {
    case 'result': {
      if (outcome.kind !== 'recorded') return fail(stringify(outcome));
      const { result } = outcome;
      const type = item.parsed.ok ? item.parsed.command.type : item.parsed.type;
      if (result.id !== id || result.type !== type || result.code !== predicted.code) return fail(stringify(result));
      if (result.status !== (predicted.code === 'ok' ? 'applied' : 'rejected')) return fail(`status ${result.status}`);
      if ((result.message === null) !== (predicted.code === 'ok')) return fail(`message ${stringify(result.message)}`);
      if (rowsText(result.balances) !== rowsText(predicted.balances))
        return fail(`balances ${stringify(result.balances)}`);
      return;
    }
    case 'replay':
      if (outcome.kind !== 'replayed' || outcome.result.id !== id || outcome.result.code !== predicted.code)
        fail(stringify(outcome));
      return;
    case 'conflict':
      if (outcome.kind !== 'conflict' || outcome.id !== id) fail(stringify(outcome));
      return;
    case 'skipped': {
      if (outcome.kind !== 'skipped') return fail(stringify(outcome));
      const hold = item.parsed.ok && item.parsed.command.type === 'expire' ? item.parsed.command.hold : undefined;
      const retry = plan.expiries.filter((e) => e.hold === hold).map((e) => e.runAt.getTime());
      if (predicted.retryAt !== null && !retry.includes(predicted.retryAt))
        return fail(`no expiry job at ${new Date(predicted.retryAt).toISOString()}`);
      return;
    }
  }
}

const run = fc.tuple(opening, fc.array(batch, { minLength: 1, maxLength: 6 }));

/** The property: every answer and, after every batch, the whole ledger as the model says. */
function runMatchesModel([openingSteps, batches]: [Step[], BatchSpec[]]): void {
  const r = new Run();
  r.batch(r.jobsFor(openingSteps), true);
  for (const b of batches) {
    r.now += b.advanceMs;
    r.model.now = r.now;
    r.batch(r.jobsFor(b.steps), b.lockAll);
  }
  // Time runs out for every hold: the expiry jobs the plans scheduled must close all of them
  // (a not-due expiry reschedules itself, so a few rounds may be needed).
  r.now += 31 * day;
  r.model.now = r.now;
  for (let round = 0; round < 3; round++) {
    r.batch(r.jobsFor([{ kind: 'due' }]), false);
  }
  const stillHeld = [...r.model.holds].filter(([, h]) => h.status === 'active' && h.expiresAt !== null);
  if (stillHeld.length) throw new Error(`holds past their expiry still active: ${stringify(stillHeld)}`);
  r.checkJournal();
}

let commandsPlanned = 0;
/** `<task> <code>` of every result the runs planned, and debits refused by a freeze earlier in their batch. */
const codesSeen = new Set<string>();
let frozenInTheSameBatch = 0;

function tally(jobs: Job[], predictions: Prediction[]): void {
  const frozenHere = new Set<string>();
  jobs.forEach((job, i) => {
    const p = predictions[i]!;
    if (p.kind !== 'result') return;
    codesSeen.add(`${job.task} ${p.code}`);
    const account = String(job.payload.account ?? job.payload.from);
    if (job.task === 'freeze' && p.code === 'ok') frozenHere.add(account);
    if (job.task === 'unfreeze' && p.code === 'ok') frozenHere.delete(account);
    if (['debit', 'transfer', 'hold'].includes(job.task) && p.code === 'account_frozen' && frozenHere.has(account))
      frozenInTheSameBatch += 1;
  });
}

/** What the fixed seed's runs must reach, so that the property says something about the policies. */
const mustBeSeen = [
  'set_limits ok',
  'set_limits account_not_found',
  'set_limits account_closed',
  'set_limits limit_below_usage',
  'freeze ok',
  'freeze account_closed',
  'unfreeze ok',
  'close_account ok',
  'close_account account_not_empty',
  'close_account account_closed',
  'open_account account_closed',
  'credit account_closed',
  'credit limit_exceeded',
  'debit account_frozen',
  'debit account_closed',
  'transfer account_frozen',
  'transfer account_closed',
  'transfer limit_exceeded',
  'hold account_frozen',
  'capture account_frozen',
  // capture's limit_exceeded is rare here (a ceiling just above a balance that a capture then passes):
  // test/declarations.test.ts and test/policies.test.ts reach it.
];
const fixedSeed = 20261202;
const runs = Number(process.env.FC_RUNS ?? 500);
const seeds: { seed: number; path?: string; label: string }[] = process.env.FC_SEED
  ? [{ seed: Number(process.env.FC_SEED), ...(process.env.FC_PATH && { path: process.env.FC_PATH }), label: 'FC_SEED' }]
  : [
      { seed: fixedSeed, label: 'fixed seed' },
      { seed: Date.now() ^ (Math.random() * 2 ** 31), label: 'random seed' },
    ];

for (const { seed, path, label } of seeds) {
  t.test(`planBatch answers and plans as the reference model says (${label} ${seed})`, async (t) => {
    const started = performance.now();
    commandsPlanned = 0;
    const details = fc.check(fc.property(run, runMatchesModel), { numRuns: runs, seed, ...(path ? { path } : {}) });
    const seconds = (performance.now() - started) / 1000;
    if (details.failed) {
      const error =
        details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
      t.fail(`${error}\nreproduce with FC_SEED=${details.seed} FC_PATH=${details.counterexamplePath ?? ''}`, {
        counterexample: stringify(details.counterexample),
      });
    } else {
      if (label === 'fixed seed' && runs >= 500) {
        t.same(
          mustBeSeen.filter((seen) => !codesSeen.has(seen)),
          [],
          'the runs reach every policy code (a freeze and a debit in one batch too)',
        );
        t.ok(frozenInTheSameBatch > 0, `${frozenInTheSameBatch} moves refused by a freeze earlier in their own batch`);
      }
      t.pass(
        `${details.numRuns} runs, ${commandsPlanned} commands in ${seconds.toFixed(2)} s (${Math.round(details.numRuns / seconds)} runs, ${Math.round(commandsPlanned / seconds)} commands a second), seed ${details.seed}`,
      );
    }
  });
}

// decide() alone, from any state the CHECKs allow (balances up to 2^63-1, holds in every status,
// expiries on both sides of the clock): it reads the view without changing it, answers the same
// twice, rejects only with a listed code, and never proposes postings that would break a CHECK.
const bigAmount = fc.oneof(
  fc.bigInt({ min: 1n, max: 200n }),
  fc.bigInt({ min: 1n, max: maxInt64 }),
  fc.constant(maxInt64),
);
// As in the database, an account's held is the sum of its active holds (two at most here, so
// each is at most half the limit), and its balance is at least that.
const holdRow = fc.record({
  account: fc.constantFrom('a', 'b'),
  amount: fc.oneof(fc.bigInt({ min: 1n, max: 200n }), fc.bigInt({ min: 1n, max: maxInt64 / 2n })),
  status: fc.constantFrom('active', 'active', 'captured', 'released', 'expired') as fc.Arbitrary<HoldState['status']>,
  expiresInMs: fc.option(fc.integer({ min: -5000, max: 5000 }), { nil: null }),
});
const spare = fc.oneof(fc.bigInt({ min: 0n, max: 300n }), fc.bigInt({ min: 0n, max: maxInt64 }), fc.constant(maxInt64));
const someAccount = fc.constantFrom('a', 'b', 'z');
const someHold = fc.constantFrom('h1', 'h2', 'h9');
const command: fc.Arbitrary<Command> = fc.oneof(
  fc
    .record({ account: fc.constantFrom('a', 'n'), currency: fc.constantFrom('USD', 'EUR') })
    .map((c): Command => ({ id: 'x', type: 'open_account', ...c })),
  fc.record({ account: someAccount, amount: bigAmount }).map((c): Command => ({ id: 'x', type: 'credit', ...c })),
  fc.record({ account: someAccount, amount: bigAmount }).map((c): Command => ({ id: 'x', type: 'debit', ...c })),
  fc
    .record({ from: someAccount, to: someAccount, amount: bigAmount })
    .map((c): Command => ({ id: 'x', type: 'transfer', ...c })),
  fc
    .record({
      account: someAccount,
      amount: bigAmount,
      hold: someHold,
      ttl: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
    })
    .map(({ ttl, ...c }): Command => ({
      id: 'x',
      type: 'hold',
      ...c,
      ...(ttl === undefined ? {} : { ttlSeconds: ttl }),
    })),
  fc
    .record({
      hold: someHold,
      amount: fc.option(bigAmount, { nil: undefined }),
      to: fc.option(someAccount, { nil: undefined }),
    })
    .map(({ amount: a, to, ...c }): Command => ({
      id: 'x',
      type: 'capture',
      ...c,
      ...(a === undefined ? {} : { amount: a }),
      ...(to === undefined ? {} : { to }),
    })),
  someHold.map((hold): Command => ({ id: 'x', type: 'release', hold })),
  someHold.map((hold): Command => ({ id: 'expire:x', type: 'expire', hold })),
  fc
    .record({
      account: someAccount,
      overdraftLimit: fc.option(fc.oneof(fc.constant(0n), bigAmount), { nil: undefined }),
      maxBalance: fc.option(fc.oneof(fc.constant(null), fc.constant(0n), bigAmount), { nil: undefined }),
    })
    .map(({ overdraftLimit, maxBalance, account }): Command => ({
      id: 'x',
      type: 'set_limits',
      account,
      ...(overdraftLimit === undefined ? {} : { overdraftLimit }),
      ...(maxBalance === undefined ? {} : { maxBalance }),
    })),
  fc
    .record({
      account: someAccount,
      type: fc.constantFrom('freeze', 'unfreeze', 'close_account') as fc.Arbitrary<'freeze'>,
    })
    .map((c): Command => ({ id: 'x', ...c })),
);
// A policy the CHECKs allow for a row: an overdraft it may be using, a ceiling at or above its
// balance, a status (closed only when empty).
const policy = fc.record({
  overdraftLimit: fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 300n }), fc.bigInt({ min: 0n, max: maxInt64 })),
  usedOverdraft: fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 300n })),
  ceilingAbove: fc.option(fc.oneof(fc.bigInt({ min: 0n, max: 300n }), fc.constant(0n)), { nil: null }),
  status: fc.constantFrom('open', 'open', 'frozen', 'closed') as fc.Arbitrary<AccountState['status']>,
});
const view = fc
  .tuple(
    spare,
    spare,
    fc.constantFrom('USD', 'EUR'),
    fc.option(holdRow, { nil: undefined }),
    fc.option(holdRow, { nil: undefined }),
    policy,
    policy,
  )
  .map(([spareA, spareB, currencyOfB, h1, h2, policyA, policyB]): LedgerView => {
    const holds = new Map<string, HoldState>();
    for (const [hold, row] of [
      ['h1', h1],
      ['h2', h2],
    ] as const) {
      if (!row) continue;
      const { expiresInMs, ...rest } = row;
      holds.set(hold, { hold, ...rest, expiresAt: expiresInMs === null ? null : new Date(start + expiresInMs) });
    }
    const row = (account: string, currency: string, extra: bigint, p: typeof policyA): AccountState => {
      const held = [...holds.values()]
        .filter((h) => h.account === account && h.status === 'active')
        .reduce((sum, h) => sum + h.amount, 0n);
      // An overdraft in use takes the balance below what the holds need, never beyond the limit.
      const used = p.usedOverdraft > p.overdraftLimit ? p.overdraftLimit : p.usedOverdraft;
      const wanted = held + extra - (extra === 0n ? used : 0n);
      const balance = wanted > maxInt64 ? maxInt64 : wanted;
      const maxBalance =
        p.ceilingAbove === null ? null : balance + p.ceilingAbove > maxInt64 ? maxInt64 : balance + p.ceilingAbove;
      const status = p.status === 'closed' && (balance !== 0n || held !== 0n) ? 'frozen' : p.status;
      return {
        account,
        currency,
        balance,
        held,
        overdraftLimit: p.overdraftLimit,
        maxBalance: maxBalance !== null && maxBalance < 0n ? 0n : maxBalance,
        status,
      };
    };
    return {
      accounts: new Map([
        ['a', row('a', 'USD', spareA, policyA)],
        ['b', row('b', currencyOfB, spareB, policyB)],
      ]),
      holds,
      now: new Date(start),
    };
  });

const copyOf = (v: LedgerView) => stringify({ accounts: [...v.accounts], holds: [...v.holds], now: v.now });

t.test('decide: pure, listed codes only, never a posting that breaks a CHECK', async (t) => {
  const details = fc.check(
    fc.property(command, view, (c, v) => {
      const before = copyOf(v);
      const decision = decide(c, v);
      if (copyOf(v) !== before) throw new Error('decide changed the view');
      if (stringify(decide(c, v)) !== stringify(decision)) throw new Error('decide answered twice differently');
      if (decision.kind === 'rejected' && !(resultCodes as readonly string[]).includes(decision.code))
        throw new Error(`unlisted code ${decision.code}`);
      if (decision.kind !== 'applied') return;
      const after = new Map([...v.accounts].map(([id, row]) => [id, { ...row }]));
      for (const posting of decision.postings) {
        const row = after.get(posting.account);
        if (!row) throw new Error(`posting to ${posting.account}, which is not in the view`);
        if (row.status === 'closed') throw new Error(`posting to closed ${row.account}`);
        if (row.status === 'frozen' && (posting.balanceDelta < 0n || posting.heldDelta > 0n))
          throw new Error(`money out of frozen ${row.account}: ${stringify(posting)}`);
        row.balance += posting.balanceDelta;
        row.held += posting.heldDelta;
        if (breaksAccountChecks(row)) throw new Error(`CHECK broken on ${row.account}: ${stringify(row)}`);
      }
      if (decision.policy) {
        const row = after.get(decision.policy.account);
        if (!row) throw new Error(`policy of ${decision.policy.account}, which is not in the view`);
        Object.assign(row, decision.policy);
        if (breaksAccountChecks(row)) throw new Error(`policy breaks a CHECK on ${row.account}: ${stringify(row)}`);
      }
    }),
    { numRuns: runs * 10, seed: seeds[0]!.seed },
  );
  if (details.failed) {
    const error =
      details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
    t.fail(`${error}\nreproduce with FC_SEED=${details.seed}`, { counterexample: stringify(details.counterexample) });
  } else {
    t.pass(`${details.numRuns} commands decided, seed ${details.seed}`);
  }
});
