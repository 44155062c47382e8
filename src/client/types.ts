import type { AccountBalance, OperationType, ResultStatus, StoredResultCode } from '../commands/contract.ts';
import type { Metadata } from '../commands/command.ts';

/**
 * Fields every command takes. `id` is the idempotency key: the same id and payload apply once.
 * Field names are the payload's own, as in SQL (`ttl_seconds`, `expires_at`); a key a command does
 * not take is refused with a TypeError before anything is enqueued.
 */
export interface CommandOptions {
  /** 1 to 128 characters; a random one is made when absent. */
  id?: string;
  /** Stored with the result; at most 4 KiB serialized. */
  metadata?: Metadata;
}

export interface OpenAccountInput extends CommandOptions {
  account: string;
  currency?: string;
}
export interface CreditInput extends CommandOptions {
  account: string;
  amount: bigint;
}
export interface DebitInput extends CommandOptions {
  account: string;
  amount: bigint;
}
export interface TransferInput extends CommandOptions {
  from: string;
  to: string;
  amount: bigint;
}
export interface HoldInput extends CommandOptions {
  account: string;
  amount: bigint;
  /** Hold id; the command id when absent. */
  hold?: string;
  /** When the service releases the hold by itself: a Date, or an ISO 8601 timestamp with a zone. */
  expires_at?: Date | string;
  /** Or: seconds from now (database clock), a positive whole number, at most 30 days. */
  ttl_seconds?: number;
}
export interface CaptureInput extends CommandOptions {
  hold: string;
  amount?: bigint;
  to?: string;
}
export interface ReleaseInput extends CommandOptions {
  hold: string;
}

export interface CommandInputs {
  open_account: OpenAccountInput;
  credit: CreditInput;
  debit: DebitInput;
  transfer: TransferInput;
  hold: HoldInput;
  capture: CaptureInput;
  release: ReleaseInput;
}

/** What an account was left with by a command. */
export type ResultBalance = AccountBalance;

/** A row of billing.operations: the one durable result of a command id. */
export interface StoredResult {
  id: string;
  /** The results cursor: `results({ after: seq })` continues after this one. */
  seq: bigint;
  type: OperationType;
  status: ResultStatus;
  /** Never `id_conflict`: a reused id writes no row of its own (see IdConflictResult). */
  code: StoredResultCode;
  message: string | null;
  /** The balances of the accounts the command touched, right after it. */
  balances: ResultBalance[];
  jobId: bigint | null;
  createdAt: Date;
}

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
  jobId: bigint | null;
  /** Always false: nothing was replayed; the first command's result is `original`. */
  replayed: false;
  original: StoredResult;
}

/** What a command call resolves with. `status` is `applied` or `rejected`; rejections are data, not errors. */
export type CommandResult = SubmittedResult | IdConflictResult;

export interface Account {
  account: string;
  currency: string;
  balance: bigint;
  held: bigint;
  available: bigint;
  createdAt: Date;
  updatedAt: Date;
}
