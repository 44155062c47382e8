import { z } from 'zod';
import { type CommandBase, declareCommand } from './declare.ts';
import { notFound, refuseClosed, type Decision, type LedgerView } from './decision.ts';
import type { AccountStatus } from './contract.ts';
import { accountId, common } from './fields.ts';

export interface Freeze extends CommandBase {
  type: 'freeze';
  account: string;
}

export interface Unfreeze extends CommandBase {
  type: 'unfreeze';
  account: string;
}

/** Freeze and unfreeze: the account's status becomes `status` (already so: applied, nothing changes). */
function setStatus(account: string, view: LedgerView, status: Extract<AccountStatus, 'open' | 'frozen'>): Decision {
  const row = view.accounts.get(account);
  if (!row) return notFound(account);
  const closed = refuseClosed(row);
  if (closed) return closed;
  return {
    kind: 'applied',
    postings: [],
    policy: { account, overdraftLimit: row.overdraftLimit, maxBalance: row.maxBalance, status },
  };
}

export const freeze = declareCommand({
  type: 'freeze',
  task: 'freeze',
  schema: z.strictObject({ ...common, account: accountId }),
  build: (p, base): Freeze => ({ ...base, type: 'freeze', account: p.account }),
  codes: ['account_not_found', 'account_closed'],
  locks: (command) => ({ accounts: [command.account] }),
  decide: (command, view) => setStatus(command.account, view, 'frozen'),
  cli: {
    name: 'freeze',
    summary: 'let no money out of an account',
    description:
      'Freeze an account: from this command on no money leaves it (debit, transfer from it, hold on it, capture ' +
      'of its holds end account_frozen); money in, release and expiry still work.',
    arguments: [{ field: 'account', help: 'account id' }],
    options: [],
    examples: ['billing freeze 1', 'billing freeze 1 --id fraud-case-77 --metadata \'{"case":"77"}\''],
  },
});

export const unfreeze = declareCommand({
  type: 'unfreeze',
  task: 'unfreeze',
  schema: z.strictObject({ ...common, account: accountId }),
  build: (p, base): Unfreeze => ({ ...base, type: 'unfreeze', account: p.account }),
  codes: ['account_not_found', 'account_closed'],
  locks: (command) => ({ accounts: [command.account] }),
  decide: (command, view) => setStatus(command.account, view, 'open'),
  cli: {
    name: 'unfreeze',
    summary: 'let money out of a frozen account again',
    description: 'Unfreeze an account: money may leave it again from this command on.',
    arguments: [{ field: 'account', help: 'account id' }],
    options: [],
    examples: ['billing unfreeze 1'],
  },
});
