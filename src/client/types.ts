import type { z } from 'zod';
import type { clientCommandOf, CommandType, OperationType } from '../commands/command.ts';
import type { StoredResult } from '../commands/stored-result.ts';

export type { StoredResult };

// Names: the client's data has the names of the SQL interface. What a command takes is its job
// payload (the fields of its declaration's schema: `ttl_seconds`, `expires_at`); what it and the
// readers return are rows of billing.operations and billing.accounts (`job_id`, `created_at`,
// `updated_at`). The client's own options, methods and errors are JavaScript (`timeoutMs`,
// `lastSeq()`, `ResultTimeoutError.jobId`): they have no SQL name.
import type { AccountStatus } from '../commands/contract.ts';

/**
 * What each command method takes: its payload's fields, named as in SQL (`ttl_seconds`,
 * `expires_at`), typed as the parser reads them (amounts as bigint), from the command's declaration
 * in src/commands/. Every command takes `id` (the idempotency key, 1 to 128 characters, a random
 * one when absent) and `metadata` (stored with the result, at most 4 KiB serialized). `expires_at`
 * is a Date or an ISO 8601 timestamp with a zone. A key a command does not take is refused with a
 * TypeError before anything is enqueued.
 */
export type CommandInputs = {
  [T in CommandType]: InputOf<(typeof clientCommandOf)[T]['schema']>;
};
type InputOf<Schema extends z.ZodType> = {
  [K in keyof z.output<Schema>]: K extends 'expires_at' ? Date | string : z.output<Schema>[K];
};

export type OpenAccountInput = CommandInputs['open_account'];
export type CreditInput = CommandInputs['credit'];
export type DebitInput = CommandInputs['debit'];
export type TransferInput = CommandInputs['transfer'];
export type HoldInput = CommandInputs['hold'];
export type CaptureInput = CommandInputs['capture'];
export type ReleaseInput = CommandInputs['release'];
export type TransactionInput = CommandInputs['transaction'];
export type ReverseInput = CommandInputs['reverse'];
export type SetLimitsInput = CommandInputs['set_limits'];
export type FreezeInput = CommandInputs['freeze'];
export type UnfreezeInput = CommandInputs['unfreeze'];
export type CloseAccountInput = CommandInputs['close_account'];

/** What a command call resolves with when its id holds this command's result. */
export interface SubmittedResult extends StoredResult {
  /**
   * true when the result was stored before this call (the same id and payload were sent earlier):
   * this call applied nothing again. false when this call's own job wrote it.
   */
  replayed: boolean;
}

/**
 * The command's id was already taken by another command (another payload or type). The first
 * command's result stays as it is (`original`); this command had no effect and has no row of its own.
 */
export interface IdConflictResult {
  id: string;
  seq: null;
  type: OperationType;
  status: 'rejected';
  code: 'id_conflict';
  message: string;
  balances: [];
  /** The job of this call's command. */
  job_id: bigint | null;
  /** Always false: nothing was replayed; the first command's result is `original`. */
  replayed: false;
  original: StoredResult;
}

/** What a command call resolves with. `status` is `applied` or `rejected`; rejections are data, not errors. */
export type CommandResult = SubmittedResult | IdConflictResult;

/** A row of billing.accounts. */
export interface Account {
  account: string;
  currency: string;
  balance: bigint;
  held: bigint;
  /** balance - held; never below -overdraftLimit. */
  available: bigint;
  /** How far below zero `available` may go (set_limits); 0: never negative. */
  overdraft_limit: bigint;
  /** The ceiling of `balance` (set_limits), or null for none. */
  max_balance: bigint | null;
  /** `open`, `frozen` (no money out) or `closed` (for good). */
  status: AccountStatus;
  created_at: Date;
  updated_at: Date;
}

/**
 * A point of billing.balance_at: a seq (`12n`), a Date, or a timestamp as ISO 8601 text with a zone
 * (`2026-12-07 12:00:00.123456+00`: text keeps the microseconds that a Date drops).
 */
export type BalancePoint = bigint | Date | string;

/**
 * An account as the results in seq order left it at a point (billing.balance_at): after every
 * result up to `seq`, and none after it.
 */
export interface BalanceAt {
  account: string;
  currency: string;
  balance: bigint;
  held: bigint;
  /** balance - held; negative only where an overdraft limit allows it. */
  available: bigint;
  /**
   * The last result this state is after (every result up to it counts, none after it): the seq
   * asked for, or the last result sequenced by the time asked for; the newest result when the point
   * is past it. Only then can the answer still change: a result that commits later may fall before
   * a seq not reached yet or a time not yet past. Otherwise the same point gives the same answer
   * for good.
   */
  seq: bigint;
}
