import type { HoldStatus } from '../commands/contract.ts';

/** An account row as the rules see it, after the commands before this one in the batch. */
export interface AccountState {
  account: string;
  currency: string;
  balance: bigint;
  held: bigint;
}

export interface HoldState {
  hold: string;
  account: string;
  amount: bigint;
  status: HoldStatus;
  expiresAt: Date | null;
}

/** The locked rows a batch may touch, and the database's clock (never the worker's). */
export interface LedgerView {
  accounts: Map<string, AccountState>;
  holds: Map<string, HoldState>;
  now: Date;
}
