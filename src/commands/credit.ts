import { z } from 'zod';
import { type CommandBase, declareCommand } from './declare.ts';
import { notFound, refuseInflow } from './decision.ts';
import { accountId, amount, common } from './fields.ts';

export interface Credit extends CommandBase {
  type: 'credit';
  account: string;
  amount: bigint;
}

export const credit = declareCommand({
  type: 'credit',
  task: 'credit',
  schema: z.strictObject({ ...common, account: accountId, amount }),
  build: (p, base): Credit => ({ ...base, type: 'credit', account: p.account, amount: p.amount }),
  codes: ['account_not_found', 'account_closed', 'limit_exceeded', 'overflow'],
  locks: (command) => ({ accounts: [command.account] }),
  decide(command, view) {
    const account = view.accounts.get(command.account);
    if (!account) return notFound(command.account);
    const refused = refuseInflow(account, command.amount);
    if (refused) return refused;
    return { kind: 'applied', postings: [{ account: command.account, balanceDelta: command.amount, heldDelta: 0n }] };
  },
  cli: {
    name: 'credit',
    summary: 'add money to an account',
    description:
      'Add money to an account (balance += amount); rejected with limit_exceeded if that would pass its max_balance.',
    arguments: [
      { field: 'account', help: 'account id' },
      { field: 'amount', help: 'minor units (cents), digits only' },
    ],
    options: [],
    examples: ['billing credit 1 777', 'billing credit 1 777 --id deposit-2024-001 --metadata \'{"source":"bank"}\''],
  },
});
