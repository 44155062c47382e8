import { z } from 'zod';
import { type CommandBase, declareCommand } from './declare.ts';
import { mismatch, notFound, refuseClosed, refuseInflow, refuseOutflow, reject } from './decision.ts';
import { accountId, amount, common } from './fields.ts';

export interface Transfer extends CommandBase {
  type: 'transfer';
  from: string;
  to: string;
  amount: bigint;
}

export const transfer = declareCommand({
  type: 'transfer',
  task: 'transfer',
  schema: z.strictObject({ ...common, from: accountId, to: accountId, amount }),
  build: (p, base): Transfer => ({ ...base, type: 'transfer', from: p.from, to: p.to, amount: p.amount }),
  codes: [
    'same_account',
    'account_not_found',
    'account_closed',
    'currency_mismatch',
    'account_frozen',
    'insufficient_funds',
    'limit_exceeded',
    'overflow',
  ],
  locks: (command) => ({ accounts: [command.from, command.to] }),
  decide(command, view) {
    if (command.from === command.to) return reject('same_account', `from and to are both ${command.from}`);
    const from = view.accounts.get(command.from);
    if (!from) return notFound(command.from);
    const to = view.accounts.get(command.to);
    if (!to) return notFound(command.to);
    const closed = refuseClosed(from) ?? refuseClosed(to);
    if (closed) return closed;
    if (from.currency !== to.currency) return mismatch(from, to);
    const refused = refuseOutflow(from, command.amount) ?? refuseInflow(to, command.amount);
    if (refused) return refused;
    return {
      kind: 'applied',
      postings: [
        { account: command.from, balanceDelta: -command.amount, heldDelta: 0n },
        { account: command.to, balanceDelta: command.amount, heldDelta: 0n },
      ],
    };
  },
  cli: {
    name: 'transfer',
    summary: 'move money between two accounts',
    description: 'Move money between two accounts of the same currency, in one transaction.',
    arguments: [
      { field: 'from', help: 'account the money leaves' },
      { field: 'to', help: 'account the money goes to' },
      { field: 'amount', help: 'minor units (cents), digits only' },
    ],
    options: [],
    examples: ['billing transfer 1 2 111', 'billing transfer 1 2 111 --id order-42-pay --json'],
  },
});
