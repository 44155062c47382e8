import { z } from 'zod';
import { type CommandBase, declareCommand } from './declare.ts';
import { available, notFound, refuseClosed, reject } from './decision.ts';
import { accountId, ceiling, common, limit } from './fields.ts';

export interface SetLimits extends CommandBase {
  type: 'set_limits';
  account: string;
  overdraftLimit?: bigint;
  /** null removes the ceiling; absent keeps it. */
  maxBalance?: bigint | null;
}

export const setLimits = declareCommand({
  type: 'set_limits',
  task: 'set_limits',
  schema: z
    .strictObject({ ...common, account: accountId, overdraft_limit: limit.optional(), max_balance: ceiling.optional() })
    .refine((p) => p.overdraft_limit !== undefined || p.max_balance !== undefined, {
      message: 'give overdraft_limit, max_balance or both',
      path: ['overdraft_limit'],
    }),
  build: (p, base): SetLimits => ({
    ...base,
    type: 'set_limits',
    account: p.account,
    ...(p.overdraft_limit === undefined ? {} : { overdraftLimit: p.overdraft_limit }),
    ...(p.max_balance === undefined ? {} : { maxBalance: p.max_balance }),
  }),
  codes: ['account_not_found', 'account_closed', 'limit_below_usage'],
  locks: (command) => ({ accounts: [command.account] }),
  decide(command, view) {
    const account = view.accounts.get(command.account);
    if (!account) return notFound(command.account);
    const closed = refuseClosed(account);
    if (closed) return closed;
    const overdraftLimit = command.overdraftLimit ?? account.overdraftLimit;
    const maxBalance = command.maxBalance === undefined ? account.maxBalance : command.maxBalance;
    // A limit never makes a row that already exists break it: the account would be in breach at once.
    if (available(account) < -overdraftLimit)
      return reject(
        'limit_below_usage',
        `account ${command.account} has ${available(account)} available: an overdraft_limit of ${overdraftLimit} is too low`,
      );
    if (maxBalance !== null && account.balance > maxBalance)
      return reject(
        'limit_below_usage',
        `account ${command.account} has a balance of ${account.balance}: a max_balance of ${maxBalance} is too low`,
      );
    return {
      kind: 'applied',
      postings: [],
      policy: { account: account.account, overdraftLimit, maxBalance, status: account.status },
    };
  },
  cli: {
    name: 'set-limits',
    summary: "change an account's overdraft and ceiling",
    description:
      'Set how far below zero available may go (--overdraft-limit, 0: never negative) and the highest balance ' +
      '(--max-balance, none: no ceiling), from this command on. Rejected with limit_below_usage if the account ' +
      'already uses more than the new limits allow.',
    arguments: [{ field: 'account', help: 'account id' }],
    options: [
      { flags: '--overdraft-limit <units>', field: 'overdraft_limit', help: 'minor units, digits only (0: none)' },
      { flags: '--max-balance <units>', field: 'max_balance', help: 'minor units, digits only, or none to remove it' },
    ],
    examples: [
      'billing set-limits 1 --overdraft-limit 5000',
      'billing set-limits 1 --max-balance 100000',
      'billing set-limits 1 --max-balance none',
    ],
  },
});
