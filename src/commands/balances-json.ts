import type { AccountBalance } from './contract.ts';

/**
 * How `billing.operations.balances` stores what a command left on each account it touched: money
 * as strings of digits in the JSON, bigint in the code. The ledger writes it, the client reads it.
 */
export interface BalanceJson {
  account: string;
  balance: string;
  held: string;
}

export function balancesToJson(balances: readonly AccountBalance[]): BalanceJson[] {
  return balances.map((b) => ({ account: b.account, balance: String(b.balance), held: String(b.held) }));
}

export function balancesFromJson(json: unknown): AccountBalance[] {
  if (!Array.isArray(json)) return [];
  return (json as BalanceJson[]).map((b) => ({ account: b.account, balance: BigInt(b.balance), held: BigInt(b.held) }));
}
