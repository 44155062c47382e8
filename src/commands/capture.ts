import { z } from 'zod';
import { type CommandBase, declareCommand } from './declare.ts';
import {
  closedReason,
  frozen,
  holdNotFound,
  mismatch,
  notFound,
  refuseClosed,
  refuseInflow,
  reject,
  type Posting,
} from './decision.ts';
import { accountId, amount, common, holdRef } from './fields.ts';

export interface Capture extends CommandBase {
  type: 'capture';
  hold: string;
  amount?: bigint;
  to?: string;
}

export const capture = declareCommand({
  type: 'capture',
  task: 'capture',
  schema: z.strictObject({ ...common, hold: holdRef, amount: amount.optional(), to: accountId.optional() }),
  build: (p, base): Capture => ({
    ...base,
    type: 'capture',
    hold: p.hold,
    ...(p.amount === undefined ? {} : { amount: p.amount }),
    ...(p.to === undefined ? {} : { to: p.to }),
  }),
  codes: [
    'hold_not_found',
    'hold_closed',
    'amount_exceeds_hold',
    'account_not_found',
    'account_closed',
    'currency_mismatch',
    'account_frozen',
    'limit_exceeded',
    'overflow',
  ],
  // The hold's own account is found through the hold, under the hold's lock (its creator locked both).
  locks: (command) => ({ accounts: command.to === undefined ? [] : [command.to], hold: command.hold }),
  decide(command, view) {
    const hold = view.holds.get(command.hold);
    if (!hold) return holdNotFound(command.hold);
    const closed = closedReason(hold, view.now);
    if (closed) return reject('hold_closed', closed);
    const amount = command.amount ?? hold.amount;
    if (amount > hold.amount)
      return reject('amount_exceeds_hold', `amount ${amount} is more than the ${hold.amount} held`);
    const source = view.accounts.get(hold.account);
    if (!source) return notFound(hold.account);
    const to = command.to === undefined ? undefined : view.accounts.get(command.to);
    if (command.to !== undefined && !to) return notFound(command.to);
    // A closed account is empty, so it has no active hold; `to` may be closed.
    const accountClosed = refuseClosed(source) ?? (to && refuseClosed(to));
    if (accountClosed) return accountClosed;
    if (to && to.currency !== source.currency) return mismatch(source, to);
    // Capturing takes the money a frozen account holds: it stays until the account is unfrozen
    // (or the hold is released or expires, which frees it).
    if (source.status === 'frozen') return frozen(source);
    // The whole hold leaves `held`; only the captured amount leaves the balance: the rest is released.
    const release: Posting = { account: hold.account, balanceDelta: -amount, heldDelta: -hold.amount };
    const closeHold = {
      hold: hold.hold,
      status: 'captured' as const,
      captured: amount,
      capturedTo: command.to ?? null,
    };
    if (!to) return { kind: 'applied', postings: [release], closeHold };
    // Captured back to its own account, the money leaves and returns: the balance cannot grow.
    const refused = to.account === hold.account ? undefined : refuseInflow(to, amount);
    if (refused) return refused;
    return {
      kind: 'applied',
      postings: [release, { account: to.account, balanceDelta: amount, heldDelta: 0n }],
      closeHold,
    };
  },
  cli: {
    name: 'capture',
    summary: 'take (part of) a hold',
    description:
      'Take a hold: its amount (or part of it) leaves the balance, or moves to --to; the rest is released; the hold closes.',
    arguments: [
      { field: 'hold', help: 'hold id' },
      { field: 'amount', help: 'minor units to take (default: all of the hold)', optional: true },
    ],
    options: [
      {
        flags: '--to <account>',
        field: 'to',
        help: 'move the captured money to this account instead of taking it off',
      },
    ],
    examples: ['billing capture order-7', 'billing capture order-7 30 --to 2'],
  },
});
