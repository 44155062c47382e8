import { z } from 'zod';
import { type CommandBase, declareCommand } from './declare.ts';
import { notFound, refuseClosed, reject } from './decision.ts';
import { accountId, common } from './fields.ts';

export interface CloseAccount extends CommandBase {
  type: 'close_account';
  account: string;
}

export const closeAccount = declareCommand({
  type: 'close_account',
  task: 'close_account',
  schema: z.strictObject({ ...common, account: accountId }),
  build: (p, base): CloseAccount => ({ ...base, type: 'close_account', account: p.account }),
  // A closed account is empty (CHECK closed_is_empty), so closing it again is account_closed.
  codes: ['account_not_found', 'account_closed', 'account_not_empty'],
  locks: (command) => ({ accounts: [command.account] }),
  decide(command, view) {
    const account = view.accounts.get(command.account);
    if (!account) return notFound(command.account);
    const closed = refuseClosed(account);
    if (closed) return closed;
    if (account.balance !== 0n || account.held !== 0n)
      return reject(
        'account_not_empty',
        `account ${command.account} has a balance of ${account.balance} and ${account.held} held: both must be 0`,
      );
    return {
      kind: 'applied',
      postings: [],
      policy: {
        account: account.account,
        overdraftLimit: account.overdraftLimit,
        maxBalance: account.maxBalance,
        status: 'closed',
      },
    };
  },
  cli: {
    name: 'close-account',
    summary: 'close an empty account for good',
    description:
      'Close an account whose balance and held are 0. Every later command that names it ends account_closed ' +
      '(open-account too): it is never reopened, and its history stays.',
    arguments: [{ field: 'account', help: 'account id' }],
    options: [],
    examples: ['billing close-account 1'],
  },
});
