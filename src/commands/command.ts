import type { OperationType } from './contract.ts';

export type Metadata = { [key: string]: unknown };

interface CommandBase {
  /** Command id and idempotency key (1 to 128 characters). */
  id: string;
  metadata?: Metadata;
}

export interface OpenAccount extends CommandBase {
  type: 'open_account';
  account: string;
  currency: string;
}
export interface Credit extends CommandBase {
  type: 'credit';
  account: string;
  amount: bigint;
}
export interface Debit extends CommandBase {
  type: 'debit';
  account: string;
  amount: bigint;
}
export interface Transfer extends CommandBase {
  type: 'transfer';
  from: string;
  to: string;
  amount: bigint;
}
export interface Hold extends CommandBase {
  type: 'hold';
  account: string;
  amount: bigint;
  /** Hold id; defaults to the command id. */
  hold: string;
  /** Absolute expiry, or a time to live resolved against the database clock when applied. */
  expiresAt?: Date;
  ttlSeconds?: number;
}
export interface Capture extends CommandBase {
  type: 'capture';
  hold: string;
  amount?: bigint;
  to?: string;
}
export interface Release extends CommandBase {
  type: 'release';
  hold: string;
}
/**
 * Issued by the service when a hold's time runs out (task expire_hold, type expire, id
 * `expire:<hold>`: see contract.ts).
 */
export interface HoldExpiry extends CommandBase {
  type: 'expire';
  hold: string;
}

export type Command = OpenAccount | Credit | Debit | Transfer | Hold | Capture | Release | HoldExpiry;

export type CommandOf<T extends OperationType> = Extract<Command, { type: T }>;
