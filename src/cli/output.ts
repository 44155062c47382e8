import type { Account, CommandResult, StoredResult } from '../client/types.ts';
import { toJson } from './context.ts';

/**
 * One line per result: `#12 transfer order-42 applied ok  1=666 2=111`. Ids and messages come from
 * clients: control characters (newlines, ANSI escapes), bidi overrides, lone surrogates and the
 * backslash are escaped, so a result is always one line that says what it is.
 */
export function formatResult(result: CommandResult | StoredResult): string {
  const seq = result.seq === null ? '#-' : `#${result.seq}`;
  const outcome = `${result.status} ${result.code}${result.message ? `: ${printable(result.message)}` : ''}`;
  const balances = result.balances
    .map((b) => `${printable(b.account)}=${b.balance}${b.held ? ` (held ${b.held})` : ''}`)
    .join(' ');
  return [seq, printable(result.type), printable(result.id), outcome, balances].filter(Boolean).join('  ');
}

// C0 and C1 controls, DEL, the bidi embeddings, overrides and isolates, lone surrogates, backslash.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const unprintable = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\\]|\p{Cs}/gu;

/** Text for a terminal: what cannot be shown as itself is written as a `\uXXXX` escape. */
export function printable(text: string): string {
  return text.replace(unprintable, (char) =>
    char === '\\' ? '\\\\' : `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** A result as scripts read it: money as strings of digits; a command's own call adds `replayed` (last). */
export function resultJson(result: CommandResult | StoredResult): string {
  const { balances, ...rest } = result;
  if (!('replayed' in rest)) return toJson({ ...rest, balances });
  const { replayed, ...fields } = rest;
  return toJson({ ...fields, balances, replayed });
}

export function formatAccounts(accounts: (Account | { account: string; missing: true })[]): string {
  const header = ['account', 'currency', 'balance', 'held', 'available'];
  const rows = accounts.map((a) =>
    'missing' in a
      ? [a.account, '-', 'no such account', '', '']
      : [a.account, a.currency, String(a.balance), String(a.held), String(a.available)],
  );
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i >= 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}
