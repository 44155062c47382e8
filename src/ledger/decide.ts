import { maxHoldSeconds, maxInt64, type RejectionCode } from '../commands/contract.ts';
import type {
  Capture,
  Command,
  Credit,
  Debit,
  HoldExpiry,
  Hold,
  OpenAccount,
  Release,
  Transfer,
} from '../commands/command.ts';
import type { AccountState, HoldState, LedgerView } from './state.ts';

/** A change of one account: what the journal records as one entry. */
export interface Posting {
  account: string;
  balanceDelta: bigint;
  heldDelta: bigint;
}

export type Decision =
  | { kind: 'rejected'; code: RejectionCode; message: string }
  | {
      kind: 'applied';
      postings: Posting[];
      openAccount?: { account: string; currency: string };
      createHold?: HoldState;
      closeHold?: {
        hold: string;
        status: 'captured' | 'released' | 'expired';
        captured: bigint;
        capturedTo: string | null;
      };
    }
  /** Nothing to do and nothing to record: an expiry for a hold that is already closed or not yet due. */
  | { kind: 'skipped'; reason: string; retryAt?: Date };

const reject = (code: RejectionCode, message: string): Decision => ({ kind: 'rejected', code, message });

/**
 * The rules, with no I/O: given the locked rows, decide one command. Checks run in a fixed,
 * documented order, so the same command against the same rows always gets the same code.
 */
export function decide(command: Command, view: LedgerView): Decision {
  switch (command.type) {
    case 'open_account':
      return decideOpenAccount(command, view);
    case 'credit':
      return decideCredit(command, view);
    case 'debit':
      return decideDebit(command, view);
    case 'transfer':
      return decideTransfer(command, view);
    case 'hold':
      return decideHold(command, view);
    case 'capture':
      return decideCapture(command, view);
    case 'release':
      return decideRelease(command, view);
    case 'expire':
      return decideExpiry(command, view);
  }
}

export const available = (account: AccountState): bigint => account.balance - account.held;

function decideOpenAccount(command: OpenAccount, view: LedgerView): Decision {
  if (view.accounts.has(command.account)) return reject('account_exists', `account ${command.account} already exists`);
  return { kind: 'applied', postings: [], openAccount: { account: command.account, currency: command.currency } };
}

function decideCredit(command: Credit, view: LedgerView): Decision {
  const account = view.accounts.get(command.account);
  if (!account) return notFound(command.account);
  if (account.balance + command.amount > maxInt64) return overflow(command.account);
  return { kind: 'applied', postings: [{ account: command.account, balanceDelta: command.amount, heldDelta: 0n }] };
}

function decideDebit(command: Debit, view: LedgerView): Decision {
  const account = view.accounts.get(command.account);
  if (!account) return notFound(command.account);
  if (available(account) < command.amount) return insufficient(account, command.amount);
  return { kind: 'applied', postings: [{ account: command.account, balanceDelta: -command.amount, heldDelta: 0n }] };
}

function decideTransfer(command: Transfer, view: LedgerView): Decision {
  if (command.from === command.to) return reject('same_account', `from and to are both ${command.from}`);
  const from = view.accounts.get(command.from);
  if (!from) return notFound(command.from);
  const to = view.accounts.get(command.to);
  if (!to) return notFound(command.to);
  if (from.currency !== to.currency) return mismatch(from, to);
  if (available(from) < command.amount) return insufficient(from, command.amount);
  if (to.balance + command.amount > maxInt64) return overflow(command.to);
  return {
    kind: 'applied',
    postings: [
      { account: command.from, balanceDelta: -command.amount, heldDelta: 0n },
      { account: command.to, balanceDelta: command.amount, heldDelta: 0n },
    ],
  };
}

function decideHold(command: Hold, view: LedgerView): Decision {
  const account = view.accounts.get(command.account);
  if (!account) return notFound(command.account);
  if (view.holds.has(command.hold)) return reject('hold_exists', `hold ${command.hold} already exists`);
  const expiresAt = holdExpiry(command, view.now);
  if (expiresAt && expiresAt.getTime() <= view.now.getTime()) {
    return reject('invalid_command', `expires_at: must be in the future (database time is ${view.now.toISOString()})`);
  }
  if (expiresAt && expiresAt.getTime() - view.now.getTime() > maxHoldSeconds * 1000) {
    return reject('invalid_command', 'expires_at: must be at most 30 days ahead');
  }
  if (available(account) < command.amount) return insufficient(account, command.amount);
  return {
    kind: 'applied',
    postings: [{ account: command.account, balanceDelta: 0n, heldDelta: command.amount }],
    createHold: { hold: command.hold, account: command.account, amount: command.amount, status: 'active', expiresAt },
  };
}

/** ttl_seconds counts from the database clock at the moment the hold is applied. */
function holdExpiry(command: Hold, now: Date): Date | null {
  if (command.expiresAt) return command.expiresAt;
  if (command.ttlSeconds !== undefined) return new Date(now.getTime() + command.ttlSeconds * 1000);
  return null;
}

function decideCapture(command: Capture, view: LedgerView): Decision {
  const hold = view.holds.get(command.hold);
  if (!hold) return reject('hold_not_found', `hold ${command.hold} does not exist`);
  const closed = closedReason(hold, view.now);
  if (closed) return reject('hold_closed', closed);
  const amount = command.amount ?? hold.amount;
  if (amount > hold.amount)
    return reject('amount_exceeds_hold', `amount ${amount} is more than the ${hold.amount} held`);
  const source = view.accounts.get(hold.account);
  if (!source) return notFound(hold.account);
  // The whole hold leaves `held`; only the captured amount leaves the balance: the rest is released.
  const release: Posting = { account: hold.account, balanceDelta: -amount, heldDelta: -hold.amount };
  const closeHold = { hold: hold.hold, status: 'captured' as const, captured: amount, capturedTo: command.to ?? null };
  if (command.to === undefined) return { kind: 'applied', postings: [release], closeHold };
  const to = view.accounts.get(command.to);
  if (!to) return notFound(command.to);
  if (to.currency !== source.currency) return mismatch(source, to);
  // Captured back to its own account, the money leaves and returns: the balance cannot grow.
  if (command.to !== hold.account && to.balance + amount > maxInt64) return overflow(command.to);
  return {
    kind: 'applied',
    postings: [release, { account: command.to, balanceDelta: amount, heldDelta: 0n }],
    closeHold,
  };
}

function decideRelease(command: Release, view: LedgerView): Decision {
  const hold = view.holds.get(command.hold);
  if (!hold) return reject('hold_not_found', `hold ${command.hold} does not exist`);
  const closed = closedReason(hold, view.now);
  if (closed) return reject('hold_closed', closed);
  return {
    kind: 'applied',
    postings: [{ account: hold.account, balanceDelta: 0n, heldDelta: -hold.amount }],
    closeHold: { hold: hold.hold, status: 'released', captured: 0n, capturedTo: null },
  };
}

function decideExpiry(command: HoldExpiry, view: LedgerView): Decision {
  const hold = view.holds.get(command.hold);
  if (!hold || hold.status !== 'active') return { kind: 'skipped', reason: `hold ${command.hold} is not active` };
  if (!hold.expiresAt) return { kind: 'skipped', reason: `hold ${command.hold} has no expiry` };
  if (hold.expiresAt.getTime() > view.now.getTime()) {
    return { kind: 'skipped', reason: `hold ${command.hold} is not due yet`, retryAt: hold.expiresAt };
  }
  return {
    kind: 'applied',
    postings: [{ account: hold.account, balanceDelta: 0n, heldDelta: -hold.amount }],
    closeHold: { hold: hold.hold, status: 'expired', captured: 0n, capturedTo: null },
  };
}

/** A hold past its expiry is closed for capture and release even before the expiry job has run. */
function closedReason(hold: HoldState, now: Date): string | undefined {
  if (hold.status !== 'active') return `hold ${hold.hold} is already ${hold.status}`;
  if (hold.expiresAt && hold.expiresAt.getTime() <= now.getTime())
    return `hold ${hold.hold} expired at ${hold.expiresAt.toISOString()}`;
  return undefined;
}

function notFound(account: string): Decision {
  return reject('account_not_found', `account ${account} does not exist`);
}

function overflow(account: string): Decision {
  return reject('overflow', `balance of ${account} would exceed ${maxInt64}`);
}

function insufficient(account: AccountState, amount: bigint): Decision {
  return reject(
    'insufficient_funds',
    `account ${account.account} has ${available(account)} available, ${amount} needed`,
  );
}

function mismatch(a: AccountState, b: AccountState): Decision {
  return reject('currency_mismatch', `${a.account} is in ${a.currency}, ${b.account} in ${b.currency}`);
}
