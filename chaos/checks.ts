// The end-of-run checks of the chaos run: one repeatable-read snapshot of the ledger and the queue,
// checked on its own terms (journal chains, constraints, conservation) and replayed through the
// reference model of the rules (model/) in seq order.
import type { Job } from 'graphile-worker';
import type { Selectable } from 'kysely';
import type { BalanceJson } from '../src/commands/balances-json.ts';
import type { BillingAccounts, BillingEntries, BillingHolds, BillingOperations } from '../src/db/schema.ts';
import pg from 'pg';
import { HostClient } from '../src/db/hosts.ts';
import { type Posting, ReferenceLedger, type ReplayOp } from '../model/reference-ledger.ts';
import type { PlannedCommand } from './commands.ts';

export interface Check {
  name: string;
  /** The figure printed with the check. */
  figure: string;
  violations: number;
  /** The first few violations, for the log. */
  examples: string[];
}

export interface Snapshot {
  ops: OpRow[];
  entries: EntryRow[];
  accounts: AccountRow[];
  holds: HoldRow[];
  jobs: JobRow[];
  idConflicts: number;
  now: Date;
}

/** Rows as the snapshot reads them, typed by the generated schema; balances' amounts stay JSON text. */
type OpRow = Pick<
  Selectable<BillingOperations>,
  'id' | 'seq' | 'type' | 'status' | 'code' | 'job_id' | 'created_at'
> & {
  balances: BalanceJson[];
  committed_at: Date | null;
};
type EntryRow = Pick<
  Selectable<BillingEntries>,
  | 'id'
  | 'operation_id'
  | 'account'
  | 'balance_delta'
  | 'held_delta'
  | 'balance_after'
  | 'held_after'
  | 'overdraft_limit'
  | 'max_balance'
>;
type AccountRow = Selectable<BillingAccounts>;
type HoldRow = Pick<
  Selectable<BillingHolds>,
  | 'hold'
  | 'account'
  | 'amount'
  | 'status'
  | 'captured'
  | 'captured_to'
  | 'expires_at'
  | 'created_at'
  | 'closed_at'
  | 'operation_id'
>;
/** graphile_worker.jobs as graphile-worker types it, its id read as a bigint. */
type JobRow = Pick<Job, 'task_identifier' | 'locked_by' | 'attempts' | 'max_attempts' | 'last_error' | 'run_at'> & {
  id: bigint;
  due: boolean;
};

const int8 = 20;
const bigintTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === int8) return (value: string) => BigInt(value);
    return pg.types.getTypeParser(oid, format ?? 'text');
  },
};

/** Reads everything the checks need in one snapshot. Needs track_commit_timestamp = on. */
export async function readSnapshot(databaseUrl: string): Promise<Snapshot> {
  const client = new HostClient({ connectionString: databaseUrl, types: bigintTypes });
  await client.connect();
  try {
    await client.query('begin isolation level repeatable read read only');
    const ops = await client.query<OpRow>(`select id, seq, type, status, code, job_id, balances, created_at,
      pg_xact_commit_timestamp(xmin) as committed_at from billing.operations order by seq`);
    const entries = await client.query<EntryRow>(`select id, operation_id, account, balance_delta, held_delta,
      balance_after, held_after, overdraft_limit, max_balance from billing.entries order by id`);
    const accounts = await client.query<AccountRow>(
      `select account, currency, balance, held, available, overdraft_limit, max_balance, status, created_at, updated_at
      from billing.accounts`,
    );
    const holds = await client.query<HoldRow>(`select hold, account, amount, status, captured, captured_to, expires_at,
      created_at, closed_at, operation_id from billing.holds`);
    const jobs =
      await client.query<JobRow>(`select id, task_identifier, locked_by, attempts, max_attempts, last_error, run_at,
      run_at <= now() as due from graphile_worker.jobs where task_identifier like 'billing/%'`);
    const conflicts = await client.query<{ n: bigint }>('select count(*) as n from billing.id_conflicts');
    const now = await client.query<{ now: Date }>('select now() as now');
    await client.query('commit');
    return {
      ops: ops.rows,
      entries: entries.rows,
      accounts: accounts.rows,
      holds: holds.rows,
      jobs: jobs.rows,
      idConflicts: Number(conflicts.rows[0]!.n),
      now: now.rows[0]!.now,
    };
  } finally {
    await client.end().catch(() => {});
  }
}

class CheckBuilder {
  readonly check: Check;
  constructor(name: string) {
    this.check = { name, figure: '', violations: 0, examples: [] };
  }
  fail(example: string): void {
    this.check.violations += 1;
    if (this.check.examples.length < 5) this.check.examples.push(example);
  }
  done(figure: string): Check {
    this.check.figure = figure;
    return this.check;
  }
}

export interface CheckInput {
  snapshot: Snapshot;
  /** Every command id the producer enqueued (at least once), with what it sent. */
  commands: Map<string, PlannedCommand>;
  /** The database clock when the run began: nothing may be stamped earlier. */
  startedAt: Date;
  /** When PostgreSQL was down (crash restarts), wall clock ms: no commit can happen then. */
  databaseDown?: { from: number; to: number }[];
  defaultCurrency?: string;
}

/**
 * docs/guarantees.md: an expired hold is released within 5 seconds of its expiry, whatever the
 * faults: every worker's sweeper expires a hold whose job is held up (killed, frozen or cut-off worker).
 */
export const EXPIRY_BOUND_MS = 5000;
/**
 * After a crash restart of PostgreSQL every worker reconnects (a fresh runner, or a fresh process
 * when its liveness session is gone) before it can expire anything: an expiry due within this long
 * before the server came back, or while it was down, gets this long on top of the 5 s. In `npm test`,
 * with other test files on the same two cores, one took 4.0 s after the server was back.
 */
export const RECONNECT_BOUND_MS = 10_000;

export interface CheckReport {
  checks: Check[];
  /** The latest expiry's commit after its hold's due time. */
  latestExpiryLatenessMs: number;
  lost: number;
  duplicatesApplied: number;
  insufficientFundsVerified: number;
}

export function runChecks(input: CheckInput): CheckReport {
  const { snapshot, commands } = input;
  const checks: Check[] = [];
  const opsById = new Map(snapshot.ops.map((op) => [op.id, op]));
  const holdsById = new Map(snapshot.holds.map((h) => [h.hold, h]));

  // 1. Exactly one result per enqueued command id, and no result for anything else.
  const results = new CheckBuilder('every enqueued command has exactly one result');
  const perId = new Map<string, number>();
  for (const op of snapshot.ops) perId.set(op.id, (perId.get(op.id) ?? 0) + 1);
  let lost = 0;
  for (const id of commands.keys()) {
    const n = perId.get(id) ?? 0;
    if (n === 0) {
      lost += 1;
      results.fail(`lost: ${id}`);
    }
    if (n > 1) results.fail(`${n} results for ${id}`);
  }
  let unexpected = 0;
  for (const op of snapshot.ops) {
    if (!commands.has(op.id) && !op.id.startsWith('expire:')) {
      unexpected += 1;
      results.fail(`result for a command nobody sent: ${op.id}`);
    }
  }
  checks.push(
    results.done(
      `${commands.size} commands, ${snapshot.ops.length} results (${snapshot.ops.length - commands.size + lost} expiries), lost ${lost}, unexpected ${unexpected}`,
    ),
  );

  // 2. Replay through the model, in seq order.
  const model = new ReferenceLedger(input.defaultCurrency ?? 'USD');
  const replay = new CheckBuilder('replay through the model: every code and balance as the rules give');
  const expectedPostings = new Map<string, Posting[]>();
  let ambiguousClock = 0;
  let insufficientFundsVerified = 0;
  for (const op of snapshot.ops) {
    const payload = op.type === 'expire' ? { hold: op.id.slice('expire:'.length) } : commands.get(op.id)?.payload;
    if (!payload) continue;
    const replayOp: ReplayOp = {
      id: op.id,
      seq: op.seq,
      type: op.type,
      code: op.code,
      payload,
      balances: (op.balances ?? []).map((b) => ({
        account: b.account,
        balance: BigInt(b.balance),
        held: BigInt(b.held),
      })),
      startedAt: op.created_at,
      committedAt: op.committed_at ?? op.created_at,
      storedExpiry: op.type === 'hold' ? holdsById.get(String(payload.hold ?? op.id))?.expires_at : undefined,
    };
    const outcome = model.replay(replayOp);
    for (const problem of outcome.problems) replay.fail(problem);
    if (outcome.ambiguousClock) ambiguousClock += 1;
    if (op.code === 'insufficient_funds' && outcome.problems.length === 0) insufficientFundsVerified += 1;
    expectedPostings.set(op.id, outcome.postings);
  }
  for (const account of snapshot.accounts) {
    const m = model.accounts.get(account.account);
    if (
      !m ||
      m.balance !== account.balance ||
      m.held !== account.held ||
      m.currency !== account.currency ||
      m.overdraftLimit !== account.overdraft_limit ||
      m.maxBalance !== account.max_balance ||
      m.status !== account.status
    ) {
      const policy = (p: { status: string }, overdraft: bigint, max: bigint | null) =>
        `${p.status}, overdraft ${overdraft}, max ${max ?? 'none'}`;
      replay.fail(
        `account ${account.account} is ${account.balance}/${account.held} (${policy(account, account.overdraft_limit, account.max_balance)}), ` +
          `the replay ends at ${m ? `${m.balance}/${m.held} (${policy(m, m.overdraftLimit, m.maxBalance)})` : 'no account'}`,
      );
    }
  }
  if (model.accounts.size !== snapshot.accounts.length)
    replay.fail(`replay has ${model.accounts.size} accounts, ledger ${snapshot.accounts.length}`);
  for (const hold of snapshot.holds) {
    const m = model.holds.get(hold.hold);
    if (!m || m.status !== hold.status || m.amount !== hold.amount)
      replay.fail(`hold ${hold.hold} is ${hold.status}, the replay says ${m?.status ?? 'no hold'}`);
  }
  checks.push(
    replay.done(
      `${snapshot.ops.length} results replayed, ${insufficientFundsVerified} insufficient_funds true where decided, decided within the clock window ${ambiguousClock}; by type (applied/all): ${resultsByType(snapshot.ops)}`,
    ),
  );

  // 3. No effect applied twice: each result's journal entries are exactly what the rules post.
  const effects = new CheckBuilder('no effect applied twice');
  const entriesByOp = new Map<string, EntryRow[]>();
  for (const e of snapshot.entries) {
    const list = entriesByOp.get(e.operation_id) ?? [];
    list.push(e);
    entriesByOp.set(e.operation_id, list);
  }
  let duplicatesApplied = 0;
  for (const [opId, list] of entriesByOp) {
    const op = opsById.get(opId);
    if (!op) {
      effects.fail(`entries for ${opId}, which has no result`);
      duplicatesApplied += 1;
      continue;
    }
    const want = expectedPostings.get(opId) ?? [];
    if (op.status !== 'applied') effects.fail(`${opId} is ${op.code} but has ${list.length} entries`);
    if (list.length > want.length) {
      duplicatesApplied += 1;
      effects.fail(`${opId} (${op.type}) has ${list.length} entries, its rules post ${want.length}`);
    } else if (!sameNet(list, want)) {
      effects.fail(`${opId} (${op.type}) entries differ from what its rules post`);
    }
  }
  for (const op of snapshot.ops) {
    if (op.status === 'applied' && (expectedPostings.get(op.id)?.length ?? 0) > 0 && !entriesByOp.has(op.id))
      effects.fail(`${op.id} applied without entries`);
  }
  checks.push(
    effects.done(
      `${snapshot.entries.length} entries over ${entriesByOp.size} operations, duplicates applied ${duplicatesApplied}`,
    ),
  );

  // 4. Journal: a gapless chain per account from zero to the row, within its limits on the way.
  const chain = new CheckBuilder('every journal is a gapless chain ending at the account row');
  const negative = new CheckBuilder(
    'held >= 0, available >= -overdraft_limit and balance <= max_balance at every entry and on every row; closed is empty',
  );
  const last = new Map<string, { balance: bigint; held: bigint }>();
  for (const e of snapshot.entries) {
    const before = last.get(e.account) ?? { balance: 0n, held: 0n };
    if (before.balance + e.balance_delta !== e.balance_after || before.held + e.held_delta !== e.held_after) {
      chain.fail(
        `entry ${e.id} of ${e.account}: ${before.balance}/${before.held} + ${e.balance_delta}/${e.held_delta} != ${e.balance_after}/${e.held_after}`,
      );
    }
    if (
      e.held_after < 0n ||
      e.balance_after - e.held_after < -e.overdraft_limit ||
      (e.max_balance !== null && e.balance_after > e.max_balance)
    )
      negative.fail(
        `entry ${e.id} of ${e.account} leaves ${e.balance_after}/${e.held_after} (overdraft ${e.overdraft_limit}, max ${e.max_balance ?? 'none'})`,
      );
    last.set(e.account, { balance: e.balance_after, held: e.held_after });
  }
  for (const a of snapshot.accounts) {
    const end = last.get(a.account) ?? { balance: 0n, held: 0n };
    if (end.balance !== a.balance || end.held !== a.held)
      chain.fail(`${a.account}: journal ends at ${end.balance}/${end.held}, row is ${a.balance}/${a.held}`);
    if (
      a.held < 0n ||
      a.available < -a.overdraft_limit ||
      a.available !== a.balance - a.held ||
      (a.max_balance !== null && a.balance > a.max_balance) ||
      (a.status === 'closed' && (a.balance !== 0n || a.held !== 0n))
    )
      negative.fail(`${a.account} row is ${a.balance}/${a.held}/${a.available} (${a.status})`);
  }
  for (const account of last.keys())
    if (!snapshot.accounts.some((a) => a.account === account)) chain.fail(`entries for missing account ${account}`);
  checks.push(chain.done(`${snapshot.accounts.length} accounts, ${snapshot.entries.length} entries`));
  checks.push(negative.done(`${snapshot.entries.length} entries and ${snapshot.accounts.length} rows`));

  // 5. Conservation, from the commands rather than from the journal.
  const money = new CheckBuilder('money conserved: balances = credits - debits - captured out');
  let credits = 0n;
  let debits = 0n;
  let capturedOut = 0n;
  // Money a transaction brought in (legs with only `to`) less what it took out (only `from`); a
  // reversal puts back its part of what the command it names brought in or took out.
  let movedIn = 0n;
  const inflowOf = new Map<string, { inflow: bigint; total: bigint }>();
  const reversedOf = new Map<string, bigint>();
  for (const op of snapshot.ops) {
    if (op.status !== 'applied') continue;
    const payload = commands.get(op.id)?.payload;
    const inflow = inflowOfCommand(op.type, payload, holdsById);
    if (inflow) inflowOf.set(op.id, inflow);
    if (op.type === 'transaction') movedIn += inflow!.inflow;
    if (op.type === 'reverse') {
      const original = inflowOf.get(String(payload!.of));
      if (!original) {
        money.fail(`reversal ${op.id} of ${String(payload!.of)}, which did not apply before it`);
        continue;
      }
      const already = reversedOf.get(String(payload!.of)) ?? 0n;
      const part = payload!.amount === undefined ? original.total - already : BigInt(String(payload!.amount));
      reversedOf.set(String(payload!.of), already + part);
      movedIn -= (original.inflow * part) / original.total;
    }
    if (op.type === 'credit') credits += BigInt(payload!.amount as string);
    if (op.type === 'debit') debits += BigInt(payload!.amount as string);
    if (op.type === 'capture' && payload!.to === undefined) {
      const hold = holdsById.get(String(payload!.hold));
      capturedOut += payload!.amount === undefined ? (hold?.amount ?? 0n) : BigInt(payload!.amount as string);
    }
  }
  const total = snapshot.accounts.reduce((sum, a) => sum + a.balance, 0n);
  if (total !== credits - debits - capturedOut + movedIn)
    money.fail(`sum of balances ${total} != ${credits} - ${debits} - ${capturedOut} + ${movedIn}`);
  const held = snapshot.accounts.reduce((sum, a) => sum + a.held, 0n);
  const activeHolds = snapshot.holds.filter((h) => h.status === 'active').reduce((sum, h) => sum + h.amount, 0n);
  if (held !== activeHolds) money.fail(`sum of held ${held} != active holds ${activeHolds}`);
  checks.push(
    money.done(
      `balances ${total} = credits ${credits} - debits ${debits} - captured out ${capturedOut} + transactions and reversals ${movedIn}; held ${held} = active holds ${activeHolds}`,
    ),
  );

  // 6. Time comes from the database: a worker with a wrong clock must leave no trace of it.
  const clock = new CheckBuilder('every timestamp and expiry from the database clock');
  const from = input.startedAt.getTime() - 1000;
  const to = snapshot.now.getTime() + 1000;
  const inRun = (what: string, d: Date | null) => {
    if (d && (d.getTime() < from || d.getTime() > to)) clock.fail(`${what} = ${d.toISOString()}, outside the run`);
  };
  for (const op of snapshot.ops) {
    inRun(`operation ${op.id} created_at`, op.created_at);
    inRun(`operation ${op.id} commit`, op.committed_at);
  }
  for (const a of snapshot.accounts) {
    inRun(`account ${a.account} created_at`, a.created_at);
    inRun(`account ${a.account} updated_at`, a.updated_at);
  }
  let lateness = 0;
  for (const h of snapshot.holds) {
    inRun(`hold ${h.hold} created_at`, h.created_at);
    inRun(`hold ${h.hold} closed_at`, h.closed_at);
    const created = opsById.get(h.operation_id);
    const payload = commands.get(h.operation_id)?.payload;
    if (created && payload?.ttl_seconds !== undefined && h.expires_at) {
      const ttl = Number(payload.ttl_seconds) * 1000;
      const committed = (created.committed_at ?? created.created_at).getTime();
      if (h.expires_at.getTime() < created.created_at.getTime() + ttl || h.expires_at.getTime() > committed + ttl) {
        clock.fail(`hold ${h.hold}: expires_at ${h.expires_at.toISOString()} is not ${ttl} ms after its decision`);
      }
    }
    if (h.status === 'active' && h.expires_at && h.expires_at.getTime() < snapshot.now.getTime() - 5000) {
      clock.fail(
        `hold ${h.hold} is still active ${snapshot.now.getTime() - h.expires_at.getTime()} ms after its expiry`,
      );
    }
  }
  for (const op of snapshot.ops) {
    if (op.type !== 'expire') continue;
    const hold = holdsById.get(op.id.slice('expire:'.length));
    const committed = (op.committed_at ?? op.created_at).getTime();
    if (!hold?.expires_at || hold.expires_at.getTime() > committed)
      clock.fail(`${op.id} committed before the hold's expiry`);
    else lateness = Math.max(lateness, op.created_at.getTime() - hold.expires_at.getTime());
  }
  const expiries = snapshot.ops.filter((op) => op.type === 'expire').length;
  checks.push(clock.done(`${expiries} holds expired, none early; latest expiry ${lateness} ms after due`));

  // 6b. docs/guarantees.md: the service releases an expired hold within 5 s of its expiry; late is a violation,
  // whatever the faults. Measured to the expiry's commit (when its release became visible).
  const onTime = new CheckBuilder(
    `hold expiries committed within ${EXPIRY_BOUND_MS / 1000} s of due whatever the workers go through; ` +
      `PostgreSQL's own downtime not counted, and ${RECONNECT_BOUND_MS / 1000} s more to reconnect after it`,
  );
  let latestExpiryLatenessMs = 0;
  let lateExpiries = 0;
  for (const op of snapshot.ops) {
    const expiresAt = op.type === 'expire' ? holdsById.get(op.id.slice('expire:'.length))?.expires_at : undefined;
    if (!expiresAt) continue;
    const committed = (op.committed_at ?? op.created_at).getTime();
    // While PostgreSQL itself is down nothing can commit, the expiry included: that time is not
    // the service's to spend, and is not counted (it is shown). Everything else is.
    const down = downWithin(input.databaseDown ?? [], expiresAt.getTime(), committed);
    const late = committed - expiresAt.getTime() - down;
    latestExpiryLatenessMs = Math.max(latestExpiryLatenessMs, late);
    if (late > EXPIRY_BOUND_MS) lateExpiries += 1;
    // Kills, pauses, partitions and terminated sessions get no allowance: the sweeper of any other
    // worker covers them. A crash restart of PostgreSQL takes every worker down with it.
    const restarted = (input.databaseDown ?? []).some(
      (w) => w.to >= expiresAt.getTime() - RECONNECT_BOUND_MS && w.from <= committed,
    );
    const bound = restarted ? EXPIRY_BOUND_MS + RECONNECT_BOUND_MS : EXPIRY_BOUND_MS;
    if (late <= bound) continue;
    const dueInRun = ((expiresAt.getTime() - input.startedAt.getTime()) / 1000).toFixed(1);
    const downNote = down > 0 ? `, not counting ${down} ms with PostgreSQL down` : '';
    onTime.fail(
      `${op.id} committed ${late} ms after due${downNote} (due ${dueInRun} s into the run; bound ${bound} ms)`,
    );
  }
  checks.push(
    onTime.done(
      `${expiries} expiries; latest committed ${latestExpiryLatenessMs} ms after due; ${lateExpiries} over ${EXPIRY_BOUND_MS} ms ` +
        `(those near a PostgreSQL restart may take ${EXPIRY_BOUND_MS + RECONNECT_BOUND_MS} ms)`,
    ),
  );

  // 7. The queue is empty: nothing locked, nothing failed for good or waiting for a retry, nothing
  // due left waiting. Only jobs that never ran and are not due yet may stay (none, after the drain).
  const queue = new CheckBuilder('no job left locked, failing or failed for good');
  const locked = snapshot.jobs.filter((j) => j.locked_by !== null);
  const failed = snapshot.jobs.filter((j) => j.locked_by === null && j.attempts >= j.max_attempts);
  const failing = snapshot.jobs.filter((j) => j.locked_by === null && j.attempts > 0 && j.attempts < j.max_attempts);
  const due = snapshot.jobs.filter((j) => j.locked_by === null && j.attempts === 0 && j.due);
  for (const j of locked) queue.fail(`job ${j.id} (${j.task_identifier}) locked by ${j.locked_by}`);
  for (const j of failed) queue.fail(`job ${j.id} (${j.task_identifier}) failed for good: ${j.last_error}`);
  for (const j of failing)
    queue.fail(
      `job ${j.id} (${j.task_identifier}) failed ${j.attempts} times, waiting to retry: ${(j.last_error ?? '').slice(0, 120)}`,
    );
  for (const j of due) queue.fail(`job ${j.id} (${j.task_identifier}) due and not run`);
  const future = snapshot.jobs.length - locked.length - failed.length - failing.length - due.length;
  checks.push(
    queue.done(
      `${snapshot.jobs.length} billing jobs left: locked ${locked.length}, failed for good ${failed.length}, failing ${failing.length}, due ${due.length}, not yet due ${future}`,
    ),
  );

  const conflicts = new CheckBuilder('no id conflicts (the producer never reuses an id)');
  if (snapshot.idConflicts > 0) conflicts.fail(`${snapshot.idConflicts} id conflicts recorded`);
  checks.push(conflicts.done(`${snapshot.idConflicts} id conflicts`));

  return { checks, lost, duplicatesApplied, insufficientFundsVerified, latestExpiryLatenessMs };
}

function sameNet(entries: EntryRow[], postings: Posting[]): boolean {
  const net = new Map<string, [bigint, bigint]>();
  const add = (account: string, b: bigint, h: bigint, sign: bigint) => {
    const v = net.get(account) ?? [0n, 0n];
    net.set(account, [v[0] + sign * b, v[1] + sign * h]);
  };
  for (const e of entries) add(e.account, e.balance_delta, e.held_delta, 1n);
  for (const p of postings) add(p.account, p.balanceDelta, p.heldDelta, -1n);
  return [...net.values()].every(([b, h]) => b === 0n && h === 0n);
}

/** Milliseconds of the windows that fall within [from, to]. */
function downWithin(windows: { from: number; to: number }[], from: number, to: number): number {
  return windows.reduce((sum, w) => sum + Math.max(0, Math.min(to, w.to) - Math.max(from, w.from)), 0);
}

/**
 * What a money move brought into the ledger from outside (negative: took out), and what reversals
 * of it may put back in all: its amount (a transaction: 1, reversed whole). Undefined for others.
 */
function inflowOfCommand(
  type: string,
  payload: Record<string, unknown> | undefined,
  holdsById: Map<string, { amount: bigint }>,
): { inflow: bigint; total: bigint } | undefined {
  if (!payload) return undefined;
  const amount = (value: unknown) => BigInt(String(value));
  switch (type) {
    case 'credit':
      return { inflow: amount(payload.amount), total: amount(payload.amount) };
    case 'debit':
      return { inflow: -amount(payload.amount), total: amount(payload.amount) };
    case 'transfer':
      return { inflow: 0n, total: amount(payload.amount) };
    case 'capture': {
      const captured =
        payload.amount === undefined ? (holdsById.get(String(payload.hold))?.amount ?? 0n) : amount(payload.amount);
      return { inflow: payload.to === undefined ? -captured : 0n, total: captured };
    }
    case 'transaction': {
      let inflow = 0n;
      for (const leg of payload.legs as { from?: string; to?: string; amount: unknown }[]) {
        if (leg.from === undefined) inflow += amount(leg.amount);
        if (leg.to === undefined) inflow -= amount(leg.amount);
      }
      return { inflow, total: 1n };
    }
    default:
      return undefined;
  }
}

/** `transfer 812/1204, ...`: how many results of each type there were, and how many applied. */
function resultsByType(ops: { type: string; status: string }[]): string {
  const counts = new Map<string, { applied: number; all: number }>();
  for (const op of ops) {
    const count = counts.get(op.type) ?? { applied: 0, all: 0 };
    count.all += 1;
    if (op.status === 'applied') count.applied += 1;
    counts.set(op.type, count);
  }
  return [...counts]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([type, { applied, all }]) => `${type} ${applied}/${all}`)
    .join(', ');
}
