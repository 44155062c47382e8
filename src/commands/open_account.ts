import { z } from 'zod';
import { type CommandBase, declareCommand } from './declare.ts';
import { closed, reject } from './decision.ts';
import { accountId, common, currency } from './fields.ts';

export interface OpenAccount extends CommandBase {
  type: 'open_account';
  account: string;
  currency: string;
}

export const openAccount = declareCommand({
  type: 'open_account',
  task: 'open_account',
  schema: z.strictObject({ ...common, account: accountId, currency: currency.optional() }),
  build: (p, base, defaults): OpenAccount => ({
    ...base,
    type: 'open_account',
    account: p.account,
    currency: p.currency ?? defaults.currency,
  }),
  // A closed account is never reopened: its id stays taken, and opening it again says it is closed.
  codes: ['account_closed', 'account_exists'],
  locks: (command) => ({ accounts: [command.account] }),
  decide(command, view) {
    const existing = view.accounts.get(command.account);
    if (existing?.status === 'closed') return closed(existing);
    if (existing) return reject('account_exists', `account ${command.account} already exists`);
    return { kind: 'applied', postings: [], openAccount: { account: command.account, currency: command.currency } };
  },
  cli: {
    name: 'open-account',
    summary: 'open an account',
    description: 'Open an account with balance 0. Rejected with account_exists if it is there already.',
    arguments: [{ field: 'account', help: 'account id: 1 to 64 of A-Z a-z 0-9 _ . : @ -' }],
    options: [
      {
        flags: '--currency <code>',
        field: 'currency',
        help: 'three capital letters (default: BILLING_DEFAULT_CURRENCY, USD)',
      },
    ],
    examples: ['billing open-account 1', 'billing open-account alice --currency EUR --id signup-alice --json'],
  },
});
