import { maxInt64, type HoldStatus, type RejectionCode } from './contract.ts';

/** An account row as the rules see it, after the commands before this one in the batch. */
export interface AccountState {
  account: string;
  currency: string;
  balance: bigint;
  held: bigint;
}

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
  return reject(
    'insufficient_funds',
    `account ${account.account} has ${available(account)} available, ${amount} needed`,
  );
}

export function mismatch(a: AccountState, b: AccountState): Decision {
  return reject('currency_mismatch', `${a.account} is in ${a.currency}, ${b.account} in ${b.currency}`);
}

/**
 * Why money may not leave this account, or undefined: every move out of an account (a debit, a
 * transaction's leg from it, a reversal that takes from it) asks this one function, so that a
 * policy of the account (frozen, closed, overdraft) holds for all of them alike.
 */
export function refuseOutflow(account: AccountState, amount: bigint): Decision | undefined {
  if (available(account) < amount) return insufficient(account, amount);
  return undefined;
}

/** Why money may not come into this account, or undefined (the counterpart of refuseOutflow). */
export function refuseInflow(account: AccountState, amount: bigint): Decision | undefined {
  if (account.balance + amount > maxInt64) return overflow(account.account);
  return undefined;
}
