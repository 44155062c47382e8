import type { OperationType } from './command.ts';
import type { AccountBalance, ResultStatus, StoredResultCode } from './contract.ts';

/**
 * A row of billing.operations, under its column names: the one durable result of a command id.
 * The client returns it (`result(id)`, `results()`, `history()`, a command's own call) and the
 * batch reads it back when an id comes again.
 */
export interface StoredResult {
  id: string;
  /** The results cursor: `results({ after: seq })` continues after this one. */
  seq: bigint;
  type: OperationType;
  status: ResultStatus;
  /** Never `id_conflict`: a reused id writes no row of its own (see the client's IdConflictResult). */
  code: StoredResultCode;
  message: string | null;
  /** The balances of the accounts the command touched, right after it. */
  balances: AccountBalance[];
  /** The graphile-worker job that wrote it (null for a result written outside a job: the expiry sweeper). */
  job_id: bigint | null;
  created_at: Date;
  /** A reversal's result only: the id of the command it reverses (billing.operations.reverses). */
  reverses?: string;
}
