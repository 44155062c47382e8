import { z } from 'zod';
import { type CommandBase, declareCommand } from './declare.ts';
import { notFound, refuseOutflow } from './decision.ts';
import { accountId, amount, common } from './fields.ts';

export interface Debit extends CommandBase {
  type: 'debit';
  account: string;
  amount: bigint;
}

export const debit = declareCommand({
  type: 'debit',
  task: 'debit',
  schema: z.strictObject({ ...common, account: accountId, amount }),
  build: (p, base): Debit => ({ ...base, type: 'debit', account: p.account, amount: p.amount }),
  codes: ['account_not_found', 'account_closed', 'account_frozen', 'insufficient_funds'],
  locks: (command) => ({ accounts: [command.account] }),
  decide(command, view) {
    const account = view.accounts.get(command.account);
    if (!account) return notFound(command.account);
    const refused = refuseOutflow(account, command.amount);
    if (refused) return refused;
    return { kind: 'applied', postings: [{ account: command.account, balanceDelta: -command.amount, heldDelta: 0n }] };
  },
  cli: {
    name: 'debit',
    summary: 'take money off an account',
    description:
      'Take money off an account (balance -= amount); rejected with insufficient_funds if available + overdraft_limit < amount, ' +
      'account_frozen if it is frozen.',
    arguments: [
      { field: 'account', help: 'account id' },
      { field: 'amount', help: 'minor units (cents), digits only' },
    ],
    options: [],
    examples: ['billing debit 1 100', 'billing debit 1 100 --json || echo "rejected or failed: $?"'],
  },
});
