import { decide, type OperationType } from '../commands/command.ts';
import {
  holdExpiry,
  type AccountBalance,
  type HoldStatus,
  type RejectionCode,
  type ResultCode,
  type ResultStatus,
} from '../commands/contract.ts';
import {
  defaultPolicy,
  type AccountPolicy,
  type AccountState,
  type HoldState,
  type LedgerView,
  type Posting,
} from '../commands/decision.ts';
import type { ParsedCommand } from '../commands/parse.ts';
import type { StoredResult } from '../commands/stored-result.ts';

/** The result of one command as stored in billing.operations. */
export interface OperationResult {
  id: string;
  type: OperationType;
  status: ResultStatus;
  code: ResultCode;
  message: string | null;
  balances: AccountBalance[];
}

/**
 * The results already in billing.operations under this batch's ids, read under the batch's locks,
 * each with the fingerprint that tells a replay from a reuse.
 */
export type EarlierResults = Map<string, { result: StoredResult; fingerprint: string }>;

export interface BatchItem {
  parsed: ParsedCommand;
  jobId: bigint | null;
}

export type ItemOutcome =
  /** A new result row, written by this batch. */
  | { kind: 'recorded'; result: OperationResult }
  /** The same command again: nothing changes and the first result stands. */
  | { kind: 'replayed'; result: StoredResult | OperationResult }
  /** The id was used before with another payload: the first result stands, the reuse is reported. */
  | { kind: 'conflict'; id: string; type: OperationType; message: string }
  | { kind: 'skipped'; reason: string };

export interface EntryRow extends Posting {
  operationId: string;
  balanceAfter: bigint;
  heldAfter: bigint;
  /** The account's limits when the change was made: the entry's own row is checked against them. */
  overdraftLimit: bigint;
  maxBalance: bigint | null;
}

/** An account row as a batch leaves it: its money and its policy. */
export interface AccountAfter extends AccountBalance, AccountPolicy {}

export interface NewOperation extends OperationResult {
  /** JSON text, stored as it is in the json column (see ParsedCommand). */
  request: string;
  fingerprint: string;
  jobId: bigint | null;
  /** The command a reversal names (billing.operations.reverses); null for every other command. */
  reverses: string | null;
  /** The accounts a transaction or reversal moves money on (billing.operations.accounts), for history. */
  accounts: string[] | null;
}

export interface BatchPlan {
  outcomes: ItemOutcome[];
  operations: NewOperation[];
  conflicts: { id: string; type: OperationType; request: string; jobId: bigint | null }[];
  openedAccounts: { account: string; currency: string }[];
  /** Final state of every account whose balance, held or policy changed. */
  changedAccounts: Map<string, AccountAfter>;
  entries: EntryRow[];
  createdHolds: (HoldState & { operationId: string })[];
  closedHolds: {
    hold: string;
    status: Exclude<HoldStatus, 'active'>;
    captured: bigint;
    capturedTo: string | null;
    operationId: string;
  }[];
  /** Expiry jobs to schedule (new holds with an expiry, and expiries that ran early). */
  expiries: { hold: string; runAt: Date }[];
  /** What this batch's reversals put back, per reversed command, added up (billing.reversal_totals). */
  reversed: Map<string, { total: bigint; amount: bigint }>;
}

/**
 * Decides a batch in arrival order against the locked rows, as if each command ran alone in that
 * order: later commands see the effects of earlier ones, a rejection touches only its own command.
 * Pure: `view` is updated in place, and the plan says what to write.
 */
export function planBatch(items: BatchItem[], existing: EarlierResults, view: LedgerView): BatchPlan {
  const plan: BatchPlan = {
    outcomes: [],
    operations: [],
    conflicts: [],
    openedAccounts: [],
    changedAccounts: new Map(),
    entries: [],
    createdHolds: [],
    closedHolds: [],
    expiries: [],
    reversed: new Map(),
  };
  // A reversal later in the batch sees the commands before it, as if each had run alone in order.
  const operations = (view.operations ??= new Map());
  const seen = new Map<string, { fingerprint: string; result: StoredResult | OperationResult }>(existing);

  for (const item of items) {
    const parsed = item.parsed;
    const id = parsed.ok ? parsed.command.id : parsed.id;
    const type = parsed.ok ? parsed.command.type : parsed.type;
    const earlier = seen.get(id);
    if (earlier) {
      if (earlier.fingerprint === parsed.fingerprint) {
        plan.outcomes.push({ kind: 'replayed', result: earlier.result });
      } else {
        plan.outcomes.push({
          kind: 'conflict',
          id,
          type,
          message: `id ${id} was already used by another ${earlier.result.type} command`,
        });
        plan.conflicts.push({ id, type, request: parsed.request, jobId: item.jobId });
      }
      continue;
    }

    let result: OperationResult;
    if (!parsed.ok) {
      result = rejected(id, type, 'invalid_command', parsed.message);
    } else {
      const decision = decide(parsed.command, view);
      if (decision.kind === 'skipped') {
        plan.outcomes.push({ kind: 'skipped', reason: decision.reason });
        if (decision.retryAt && parsed.command.type === holdExpiry.type)
          plan.expiries.push({ hold: parsed.command.hold, runAt: decision.retryAt });
        continue;
      }
      if (decision.kind === 'rejected') {
        result = rejected(id, type, decision.code, decision.message);
      } else {
        if (decision.openAccount) {
          view.accounts.set(decision.openAccount.account, {
            ...decision.openAccount,
            balance: 0n,
            held: 0n,
            ...defaultPolicy,
          });
          plan.openedAccounts.push(decision.openAccount);
        }
        const balances = applyPostings(plan, view, id, decision.postings);
        if (decision.openAccount) balances.push({ account: decision.openAccount.account, balance: 0n, held: 0n });
        if (decision.policy) balances.push(applyPolicy(plan, view, decision.policy));
        if (decision.createHold) {
          view.holds.set(decision.createHold.hold, decision.createHold);
          plan.createdHolds.push({ ...decision.createHold, operationId: id });
          if (decision.createHold.expiresAt)
            plan.expiries.push({ hold: decision.createHold.hold, runAt: decision.createHold.expiresAt });
        }
        if (decision.closeHold) {
          const hold = view.holds.get(decision.closeHold.hold);
          if (hold) view.holds.set(hold.hold, { ...hold, status: decision.closeHold.status });
          plan.closedHolds.push({ ...decision.closeHold, operationId: id });
        }
        if (decision.reversal) recordReversal(plan, view, decision.reversal);
        result = { id, type, status: 'applied', code: 'ok', message: null, balances };
        operations.set(id, {
          id,
          type,
          status: 'applied',
          moves: decision.postings
            .filter((p) => p.balanceDelta !== 0n)
            .map((p) => ({ account: p.account, balanceDelta: p.balanceDelta })),
        });
      }
    }
    if (result.status === 'rejected') operations.set(id, { id, type, status: 'rejected', moves: [] });
    plan.operations.push({
      ...result,
      request: parsed.request,
      fingerprint: parsed.fingerprint,
      jobId: item.jobId,
      ...namedBy(parsed, result, view),
    });
    plan.outcomes.push({ kind: 'recorded', result });
    seen.set(id, { fingerprint: parsed.fingerprint, result });
  }
  return plan;
}

function recordReversal(
  plan: BatchPlan,
  view: LedgerView,
  reversal: { of: string; amount: bigint; total: bigint },
): void {
  const reversals = (view.reversals ??= new Map());
  const before = reversals.get(reversal.of)?.reversed ?? 0n;
  reversals.set(reversal.of, { total: reversal.total, reversed: before + reversal.amount });
  const batch = plan.reversed.get(reversal.of)?.amount ?? 0n;
  plan.reversed.set(reversal.of, { total: reversal.total, amount: batch + reversal.amount });
}

/**
 * What a result names beside its request's top-level fields: the command a reversal reverses, and
 * the accounts a transaction's legs or a reversal's moves name (a reversal's: those of the command
 * it names, when that command exists), so that an account's history finds them.
 */
function namedBy(
  parsed: ParsedCommand,
  result: OperationResult,
  view: LedgerView,
): { reverses: string | null; accounts: string[] | null } {
  if (!parsed.ok) return { reverses: null, accounts: null };
  const command = parsed.command;
  if (command.type === 'transaction')
    return { reverses: null, accounts: distinct(command.legs.flatMap((l) => [l.from, l.to])) };
  if (command.type === 'reverse') {
    const original = result.code === 'operation_not_found' ? undefined : view.operations?.get(command.of);
    return { reverses: command.of, accounts: original ? distinct(original.moves.map((m) => m.account)) : null };
  }
  return { reverses: null, accounts: null };
}

function distinct(accounts: (string | undefined)[]): string[] {
  return [...new Set(accounts.filter((a) => a !== undefined))].sort();
}

function rejected(id: string, type: OperationType, code: RejectionCode, message: string): OperationResult {
  return { id, type, status: 'rejected', code, message, balances: [] };
}

/** A row's state as the batch writes it. */
function rowAfter(account: AccountState): AccountAfter {
  const { account: id, balance, held, overdraftLimit, maxBalance, status } = account;
  return { account: id, balance, held, overdraftLimit, maxBalance, status };
}

/** Sets an account's policy in the view (later commands of the batch decide under it) and returns its balance. */
function applyPolicy(plan: BatchPlan, view: LedgerView, policy: AccountPolicy & { account: string }): AccountBalance {
  const account = view.accounts.get(policy.account);
  if (!account) throw new Error(`policy of unlocked account ${policy.account}`);
  account.overdraftLimit = policy.overdraftLimit;
  account.maxBalance = policy.maxBalance;
  account.status = policy.status;
  if (breaksLimits(account)) throw new Error(`rule breach on ${account.account} by its policy change`);
  plan.changedAccounts.set(account.account, rowAfter(account));
  return { account: account.account, balance: account.balance, held: account.held };
}

/** What the database's CHECKs on billing.accounts would refuse. */
function breaksLimits(account: AccountState): boolean {
  return (
    account.held < 0n ||
    account.balance - account.held < -account.overdraftLimit ||
    (account.maxBalance !== null && account.balance > account.maxBalance) ||
    (account.status === 'closed' && (account.balance !== 0n || account.held !== 0n))
  );
}

/** Applies postings to the view, one journal entry each, and returns the balances they left. */
function applyPostings(plan: BatchPlan, view: LedgerView, operationId: string, postings: Posting[]): AccountBalance[] {
  const left = new Map<string, AccountBalance>();
  for (const posting of postings) {
    const account = view.accounts.get(posting.account);
    if (!account) throw new Error(`posting to unlocked account ${posting.account}`);
    account.balance += posting.balanceDelta;
    account.held += posting.heldDelta;
    // The rules never get here with a row outside its limits; if they ever did, the database's CHECK
    // constraints would refuse the commit. Failing early names the command.
    if (breaksLimits(account)) throw new Error(`rule breach on ${account.account} by ${operationId}`);
    plan.entries.push({
      ...posting,
      operationId,
      balanceAfter: account.balance,
      heldAfter: account.held,
      overdraftLimit: account.overdraftLimit,
      maxBalance: account.maxBalance,
    });
    plan.changedAccounts.set(account.account, rowAfter(account));
    left.set(account.account, { account: account.account, balance: account.balance, held: account.held });
  }
  return [...left.values()];
}
