import type { AccountState, Decision, LedgerView, Posting } from './decision.ts';
import { mismatch, notFound, refuseClosed, refuseInflow, refuseOutflow, reject } from './decision.ts';

/** One move of a transaction: from an account, to an account, or between two. */
export interface Leg {
  from?: string;
  to?: string;
  amount: bigint;
}

/**
 * Decides legs one after another, each against the balances the legs before it left (a later leg
 * may spend what an earlier one brought in), on copies of the locked rows: all of them, or the
 * first that fails, named by `label` (`legs[2]`) in the message. Per leg, in this order:
 * same_account, account_not_found (from, then to), account_closed (from, then to),
 * currency_mismatch, then refuseOutflow on `from` and refuseInflow on `to` (the account's
 * policies and its funds).
 */
export function decideLegs(legs: readonly Leg[], view: LedgerView, label: (index: number) => string): Decision {
  const after = new Map<string, AccountState>();
  const stateOf = (account: string): AccountState | undefined => {
    let state = after.get(account);
    if (state === undefined) {
      const locked = view.accounts.get(account);
      if (locked === undefined) return undefined;
      state = { ...locked };
      after.set(account, state);
    }
    return state;
  };
  const postings: Posting[] = [];
  for (const [index, leg] of legs.entries()) {
    const refused = decideLeg(leg, stateOf, postings);
    if (refused) return { ...refused, message: `${label(index)}: ${refused.message}` };
  }
  return { kind: 'applied', postings };
}

type Refusal = Extract<Decision, { kind: 'rejected' }>;

function decideLeg(
  leg: Leg,
  stateOf: (account: string) => AccountState | undefined,
  postings: Posting[],
): Refusal | undefined {
  if (leg.from !== undefined && leg.from === leg.to)
    return refusal(reject('same_account', `from and to are both ${leg.from}`));
  const from = leg.from === undefined ? undefined : stateOf(leg.from);
  if (leg.from !== undefined && !from) return refusal(notFound(leg.from));
  const to = leg.to === undefined ? undefined : stateOf(leg.to);
  if (leg.to !== undefined && !to) return refusal(notFound(leg.to));
  // A closed account refuses before anything else is checked against it, as in transfer.
  for (const account of [from, to]) {
    const closed = account && refuseClosed(account);
    if (closed) return refusal(closed);
  }
  if (from && to && from.currency !== to.currency) return refusal(mismatch(from, to));
  if (from) {
    const refused = refuseOutflow(from, leg.amount);
    if (refused) return refusal(refused);
  }
  if (to) {
    const refused = refuseInflow(to, leg.amount);
    if (refused) return refusal(refused);
  }
  if (from) {
    from.balance -= leg.amount;
    postings.push({ account: from.account, balanceDelta: -leg.amount, heldDelta: 0n });
  }
  if (to) {
    to.balance += leg.amount;
    postings.push({ account: to.account, balanceDelta: leg.amount, heldDelta: 0n });
  }
  return undefined;
}

function refusal(decision: Decision): Refusal {
  if (decision.kind !== 'rejected') throw new Error('a refusal must be a rejection');
  return decision;
}
