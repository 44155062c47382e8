// The contract between the queue, the database and the code, in one place: every name and closed
// list that SQL also spells. test/contract.test.ts compares these lists with the CHECK constraints
// and billing.submit, so a code or type added on one side only fails the tests.
// Closed lists are `as const` rather than TS enums, which Node's type stripping cannot run.
// This module imports nothing: src/client, src/ledger, src/worker and src/cli all import it.

export const taskPrefix = 'billing/';

/**
 * A hold's time running out, under the four names the stored contract (SPEC) gives it: the task
 * the service schedules (`billing/expire_hold`), the type and id prefix of the result row it writes
 * (`expire`, `expire:<hold>`), and the status it leaves the hold with (`expired`). In code it is the
 * hold's expiry: the command declared in expire_hold.ts. The command types a client sends are in
 * command.ts, one module each.
 */
export const holdExpiry = {
  taskId: 'expire_hold',
  task: `${taskPrefix}expire_hold`,
  type: 'expire',
  idPrefix: 'expire:',
  status: 'expired',
} as const;

/**
 * Command ids the service derives: `job:<job id>` for a command sent without an id (and
 * `job:<job id>:<index>:unidentified` for a batch element without one), `expire:<hold id>` for the
 * release of an expired hold. They belong to the service alone: a client id may not start with them.
 */
export const derivedIdPrefixes = ['job:', holdExpiry.idPrefix] as const;

/**
 * Every way a command can end (billing.operations.code, CHECK code_known). A rejection is one of
 * these as data, never a thrown error: exceptions are for faults (a lost connection), which
 * graphile-worker retries. `id_conflict` is answered to the sender but never stored.
 */
export const resultCodes = [
  'ok',
  'invalid_command',
  'id_conflict',
  'account_exists',
  'account_not_found',
  'same_account',
  'currency_mismatch',
  'insufficient_funds',
  'overflow',
  'hold_exists',
  'hold_not_found',
  'hold_closed',
  'amount_exceeds_hold',
  'account_frozen',
  'account_closed',
  'account_not_empty',
  'limit_below_usage',
  'limit_exceeded',
  'operation_not_found',
  'not_reversible',
  'amount_exceeds_remaining',
] as const;
export type ResultCode = (typeof resultCodes)[number];
export type RejectionCode = Exclude<ResultCode, 'ok'>;
/** The codes a row of billing.operations can hold: a reused id writes no row of its own. */
export type StoredResultCode = Exclude<ResultCode, 'id_conflict'>;

export const resultStatuses = ['applied', 'rejected'] as const;
export type ResultStatus = (typeof resultStatuses)[number];

/**
 * An account's status (billing.accounts.status, CHECK status_known): `frozen` lets no money out,
 * `closed` (empty, never reopened) answers every command that names it with `account_closed`.
 */
export const accountStatuses = ['open', 'frozen', 'closed'] as const;
export type AccountStatus = (typeof accountStatuses)[number];

export const holdStatuses = ['active', 'captured', 'released', holdExpiry.status] as const;
export type HoldStatus = (typeof holdStatuses)[number];

/** What a command left on one account it touched (billing.operations.balances, one per account). */
export interface AccountBalance {
  account: string;
  balance: bigint;
  held: bigint;
}

/** Most legs in one transaction command. */
export const maxTransactionLegs = 64;

/** Largest value of a PostgreSQL bigint: no balance or amount may exceed it. */
export const maxInt64 = 2n ** 63n - 1n;
export const maxHoldSeconds = 30 * 24 * 60 * 60;
export const maxMetadataBytes = 4096;

/** NOTIFY channel of committed results: the payload is the highest seq of the transaction. */
export const resultsChannel = 'billing_results';

/** Rows of billing.lock_slots (sql/0007_lock_rows.sql fills 0 .. lockSlotCount - 1). */
export const lockSlotCount = 65_536;

/** The four group roles, by job; the names default to these (BILLING_ROLE_* override them). */
export interface RoleNames {
  owner: string;
  worker: string;
  client: string;
  reader: string;
}
export const defaultRoleNames: RoleNames = {
  owner: 'billing_owner',
  worker: 'billing_worker',
  client: 'billing_client',
  reader: 'billing_reader',
};
