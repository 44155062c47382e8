// Closed lists, `as const` rather than TS enums, which Node's type stripping cannot run.

export const commandTypes = ['open_account', 'credit', 'debit', 'transfer', 'hold', 'capture', 'release'] as const;
export type CommandType = (typeof commandTypes)[number];

/** What the service itself issues: the release of a hold whose time ran out. */
export type OperationType = CommandType | 'expire';

export const taskPrefix = 'billing/';

/**
 * Command ids the service derives: `job:<job id>` for a command sent without an id (and
 * `job:<job id>:<index>:unidentified` for a batch element without one), `expire:<hold id>` for the
 * release of an expired hold. They belong to the service alone: a client id may not start with them.
 */
export const derivedIdPrefixes = ['job:', 'expire:'] as const;
export const expireTaskName = 'billing/expire_hold';

/**
 * Every way a command can end. A rejection is one of these as data, never a thrown error:
 * exceptions are for faults (a lost connection), which graphile-worker retries.
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
] as const;
export type ResultCode = (typeof resultCodes)[number];
export type RejectionCode = Exclude<ResultCode, 'ok'>;

export const resultStatuses = ['applied', 'rejected'] as const;
export type ResultStatus = (typeof resultStatuses)[number];

export const holdStatuses = ['active', 'captured', 'released', 'expired'] as const;
export type HoldStatus = (typeof holdStatuses)[number];

/** Largest value of a PostgreSQL bigint: no balance or amount may exceed it. */
export const maxInt64 = 2n ** 63n - 1n;
export const maxHoldSeconds = 30 * 24 * 60 * 60;
export const maxMetadataBytes = 4096;
