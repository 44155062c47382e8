import { maxInt64, type AccountStatus, type HoldStatus, type RejectionCode } from './contract.ts';

/** What set_limits, freeze, unfreeze and close_account change: the rules every other command obeys. */
export interface AccountPolicy {
  /** How far below zero `available` may go; 0: never negative. */
  overdraftLimit: bigint;
  /** The ceiling of `balance`; null: none but the bigint's. */
  maxBalance: bigint | null;
  status: AccountStatus;
}

/** An account row as the rules see it, after the commands before this one in the batch. */
export interface AccountState extends AccountPolicy {
  account: string;
  currency: string;
  balance: bigint;
  held: bigint;
}

/** The policy a new account starts with, and every account had before policies existed. */
export const defaultPolicy: AccountPolicy = { overdraftLimit: 0n, maxBalance: null, status: 'open' };

export interface HoldState {
  hold: string;
  account: string;
  amount: bigint;
  status: HoldStatus;
  expiresAt: Date | null;
}

/**
 * An earlier command as a reversal sees it: what it moved (its journal's balance changes, in the
 * order written), read from rows that never change once written. Only commands a reversal names
 * are read.
 */
export interface OperationState {
  id: string;
  type: string;
  status: 'applied' | 'rejected';
  /** Balance changes in journal order (held changes are not money moved and are left out). */
  moves: { account: string; balanceDelta: bigint }[];
}

/** How much of a command its reversals have put back (billing.reversal_totals). */
export interface ReversalTotal {
  /** What a reversal can put back in all: a single move's amount; 1 for a transaction (whole). */
  total: bigint;
  reversed: bigint;
}

/** The locked rows a batch may touch, and the database's clock (never the worker's). */
export interface LedgerView {
  accounts: Map<string, AccountState>;
  holds: Map<string, HoldState>;
  now: Date;
  /** The commands that reversals of the batch name, as far as they exist (absent: none). */
  operations?: Map<string, OperationState>;
  /** What has been reversed of those commands so far (absent: nothing). */
  reversals?: Map<string, ReversalTotal>;
}

/** A change of one account: what the journal records as one entry. */
export interface Posting {
  account: string;
  balanceDelta: bigint;
  heldDelta: bigint;
}

/** What a command's rule decides against the locked rows; the apply step turns it into writes. */
export type Decision =
  | { kind: 'rejected'; code: RejectionCode; message: string }
  | {
      kind: 'applied';
      postings: Posting[];
      openAccount?: { account: string; currency: string };
      createHold?: HoldState;
      /** The account's whole policy from this command on (set_limits, freeze, unfreeze, close_account). */
      policy?: AccountPolicy & { account: string };
      closeHold?: {
        hold: string;
        status: Exclude<HoldStatus, 'active'>;
        captured: bigint;
        capturedTo: string | null;
      };
      /** A reversal: it puts back `amount` of the `total` of command `of`. */
      reversal?: { of: string; amount: bigint; total: bigint };
    }
  /** Nothing to do and nothing to record: an expiry for a hold that is already closed or not yet due. */
  | { kind: 'skipped'; reason: string; retryAt?: Date };

// The messages the rules share, so that one code always reads the same.

export const reject = (code: RejectionCode, message: string): Decision => ({ kind: 'rejected', code, message });

export const available = (account: AccountState): bigint => account.balance - account.held;

/** What may leave the account: its available money and its overdraft. */
export const spendable = (account: AccountState): bigint => available(account) + account.overdraftLimit;

/** A hold past its expiry is closed for capture and release even before the expiry job has run. */
export function closedReason(hold: HoldState, now: Date): string | undefined {
  if (hold.status !== 'active') return `hold ${hold.hold} is already ${hold.status}`;
  if (hold.expiresAt && hold.expiresAt.getTime() <= now.getTime())
    return `hold ${hold.hold} expired at ${hold.expiresAt.toISOString()}`;
  return undefined;
}

export function holdNotFound(hold: string): Decision {
  return reject('hold_not_found', `hold ${hold} does not exist`);
}

export function notFound(account: string): Decision {
  return reject('account_not_found', `account ${account} does not exist`);
}

export function overflow(account: string): Decision {
  return reject('overflow', `balance of ${account} would exceed ${maxInt64}`);
}

export function insufficient(account: AccountState, amount: bigint): Decision {
  const overdraft = account.overdraftLimit > 0n ? ` and an overdraft of ${account.overdraftLimit}` : '';
  return reject(
    'insufficient_funds',
    `account ${account.account} has ${available(account)} available${overdraft}, ${amount} needed`,
  );
}

export function closed(account: AccountState): Decision {
  return reject('account_closed', `account ${account.account} is closed`);
}

export function frozen(account: AccountState): Decision {
  return reject('account_frozen', `account ${account.account} is frozen: no money leaves it`);
}

/** A closed account ends every command that names it: checked right after it is found. */
export function refuseClosed(account: AccountState): Decision | undefined {
  return account.status === 'closed' ? closed(account) : undefined;
}

/**
 * Why `amount` may not leave the account, or undefined when it may: closed, frozen, or more than
 * its available money and its overdraft (in that order). Debit, transfer, hold and every other
 * move out of an account ask this.
 */
export function refuseOutflow(account: AccountState, amount: bigint): Decision | undefined {
  if (account.status === 'closed') return closed(account);
  if (account.status === 'frozen') return frozen(account);
  if (spendable(account) < amount) return insufficient(account, amount);
  return undefined;
}

/**
 * Why `amount` may not come into the account, or undefined when it may: closed, above its
 * max_balance, or above the largest bigint (in that order). A frozen account takes money in.
 */
export function refuseInflow(account: AccountState, amount: bigint): Decision | undefined {
  if (account.status === 'closed') return closed(account);
  if (account.maxBalance !== null && account.balance + amount > account.maxBalance)
    return reject(
      'limit_exceeded',
      `balance of ${account.account} would be ${account.balance + amount}, above its max_balance ${account.maxBalance}`,
    );
  if (account.balance + amount > maxInt64) return overflow(account.account);
  return undefined;
}

export function mismatch(a: AccountState, b: AccountState): Decision {
  return reject('currency_mismatch', `${a.account} is in ${a.currency}, ${b.account} in ${b.currency}`);
}
