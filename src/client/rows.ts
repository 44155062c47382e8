import type { Selectable } from 'kysely';
import type { BillingAccounts, BillingOperations } from '../db/schema.ts';
import type { OperationType } from '../commands/command.ts';
import type { AccountStatus, ResultStatus } from '../commands/contract.ts';
import type { Account, StoredResult } from './types.ts';
import { balancesFromJson, type BalanceJson } from '../commands/balances-json.ts';

export const resultColumns = 'id, seq, type, status, code, message, balances, job_id, created_at';
export const accountColumns =
  'account, currency, balance, held, available, overdraft_limit, max_balance, status, created_at, updated_at';

/** billing.operations as node-pg returns it from a pool with int8 -> bigint. */
export type ResultRow = Pick<
  Selectable<BillingOperations>,
  'id' | 'seq' | 'type' | 'status' | 'code' | 'message' | 'job_id' | 'created_at'
> & { balances: BalanceJson[] | null };

export type AccountRow = Selectable<BillingAccounts>;

export function toStoredResult(row: ResultRow): StoredResult {
  return {
    id: row.id,
    seq: row.seq,
    type: row.type as OperationType,
    status: row.status as ResultStatus,
    code: row.code as StoredResult['code'],
    message: row.message,
    balances: balancesFromJson(row.balances),
    jobId: row.job_id,
    createdAt: row.created_at,
  };
}

export function toAccount(row: AccountRow): Account {
  return {
    account: row.account,
    currency: row.currency,
    balance: row.balance,
    held: row.held,
    available: row.available,
    overdraftLimit: row.overdraft_limit,
    maxBalance: row.max_balance,
    status: row.status as AccountStatus,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
