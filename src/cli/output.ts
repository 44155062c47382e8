import type { Account, CommandResult, StoredResult } from '../client/types.ts';
import { toJson } from './context.ts';

/** One line per result: `#12 transfer order-42 applied ok  1=666 2=111`. */
export function formatResult(result: CommandResult | StoredResult): string {
  const seq = result.seq === null ? '#-' : `#${result.seq}`;
  const outcome = `${result.status} ${result.code}${result.message ? `: ${result.message}` : ''}`;
  const balances = result.balances.map((b) => `${b.account}=${b.balance}${b.held ? ` (held ${b.held})` : ''}`).join(' ');
  return [seq, result.type, result.id, outcome, balances].filter(Boolean).join('  ');
}

/** A result as scripts read it: money as strings of digits; `replayed` when it was stored before this call. */
export function resultJson(result: CommandResult | StoredResult, extra: { replayed?: boolean } = {}): string {
  const { balances, ...rest } = result;
  return toJson({ ...rest, balances, ...extra });
}

export function formatAccounts(accounts: (Account | { account: string; missing: true })[]): string {
  const header = ['account', 'currency', 'balance', 'held', 'available'];
  const rows = accounts.map((a) => ('missing' in a
    ? [a.account, '-', 'no such account', '', '']
    : [a.account, a.currency, String(a.balance), String(a.held), String(a.available)]));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}
