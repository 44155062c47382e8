import type { Selectable } from 'kysely';
import type { BillingAccounts, BillingOperations } from '../db/schema.ts';
import type { OperationType } from '../commands/command.ts';
import type { ResultStatus } from '../commands/contract.ts';
import type { Account, StoredResult } from './types.ts';
import { balancesFromJson, type BalanceJson } from '../commands/balances-json.ts';

export const resultColumns = 'id, seq, type, status, code, message, balances, job_id, created_at, reverses';
export const accountColumns =
  'account, currency, balance, held, available, overdraft_limit, max_balance, status, created_at, updated_at';

/** billing.operations as node-pg returns it from a pool with int8 -> bigint. */
export type ResultRow = Pick<
  Selectable<BillingOperations>,
  'id' | 'seq' | 'type' | 'status' | 'code' | 'message' | 'job_id' | 'created_at' | 'reverses'
> & { balances: BalanceJson[] | null };

/** billing.accounts as node-pg returns `accountColumns`: the client's Account as it is (tsc checks that they agree). */
export type AccountRow = Pick<Selectable<BillingAccounts>, Exclude<keyof Account, 'status'>> & {
  status: Account['status'];
};

export function toStoredResult(row: ResultRow): StoredResult {
  return {
    id: row.id,
    seq: row.seq,
    type: row.type as OperationType,
    status: row.status as ResultStatus,
    code: row.code as StoredResult['code'],
    message: row.message,
    balances: balancesFromJson(row.balances),
    job_id: row.job_id,
    created_at: row.created_at,
    ...(row.reverses === null ? {} : { reverses: row.reverses }),
  };
}
