import type { Account, BalanceAt, CommandResult, StoredResult } from '../client/types.ts';
import { toJson } from './context.ts';

/**
 * One line per result: `#12 transfer order-42 applied ok  1=666 2=111`. Ids and messages come from
 * clients: whatever a terminal would not show as itself (below) is escaped, as is the backslash, so
 * a result is always one line that says what it is, and two ids that differ look different.
 */
export function formatResult(result: CommandResult | StoredResult): string {
  const seq = result.seq === null ? '#-' : `#${result.seq}`;
  const outcome = `${result.status} ${result.code}${result.message ? `: ${printable(result.message)}` : ''}`;
  const reverses =
    'reverses' in result && result.reverses !== undefined ? `reverses ${printable(result.reverses)}` : '';
  const balances = result.balances
    .map((b) => `${printable(b.account)}=${b.balance}${b.held ? ` (held ${b.held})` : ''}`)
    .join(' ');
  return [seq, printable(result.type), printable(result.id), reverses, outcome, balances].filter(Boolean).join('  ');
}

// Controls (C0, C1, DEL), format characters (bidi marks, overrides and isolates, zero-width space
// and joiners, U+FEFF, tag characters), every default-ignorable code point (U+3164 HANGUL FILLER,
// variation selectors, ...), line and paragraph separators, spaces other than U+0020 (they look
// like it), surrogates on their own, private-use and unassigned code points, and the backslash.
const unprintable = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}\p{Default_Ignorable_Code_Point}\\]/gu;

/**
 * Text for a terminal: what cannot be shown as itself is written as an escape, `\uXXXX` (or
 * `\u{XXXXX}` beyond U+FFFF), the backslash as `\\`. Ordinary spaces stay.
 */
export function printable(text: string): string {
  return text.replace(unprintable, (char) => {
    if (char === ' ') return char;
    if (char === '\\') return '\\\\';
    const code = char.codePointAt(0)!;
    return code > 0xffff ? `\\u{${code.toString(16)}}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** A result as scripts read it: money as strings of digits; a command's own call adds `replayed` (last). */
export function resultJson(result: CommandResult | StoredResult): string {
  const { balances, ...rest } = result;
  if (!('replayed' in rest)) return toJson({ ...rest, balances });
  const { replayed, ...fields } = rest;
  return toJson({ ...fields, balances, replayed });
}

/**
 * A table of accounts. With `atPoint` (billing balance --at) a seq column says which result each
 * state is after, and a missing account was not open at that point. A policy column only where an
 * account has one: open, no overdraft, no ceiling is the rule.
 */
export function formatAccounts(
  accounts: (Account | BalanceAt | { account: string; missing: true })[],
  atPoint = false,
): string {
  const policies = accounts.map((a) => ('overdraft_limit' in a ? policyText(a) : ''));
  const withPolicy = policies.some((p) => p !== '');
  const header = [
    'account',
    'currency',
    'balance',
    'held',
    'available',
    ...(atPoint ? ['seq'] : []),
    ...(withPolicy ? ['policy'] : []),
  ];
  const rows = accounts.map((a, i) => [
    ...('missing' in a
      ? [printable(a.account), '-', atPoint ? 'not open then' : 'no such account', '', '', ...(atPoint ? [''] : [])]
      : [
          printable(a.account),
          a.currency,
          String(a.balance),
          String(a.held),
          String(a.available),
          ...(atPoint ? ['seq' in a ? String(a.seq) : ''] : []),
        ]),
    ...(withPolicy ? [policies[i]!] : []),
  ]);
  const numeric = (column: number) => column >= 2 && column < header.length - (withPolicy ? 1 : 0);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (numeric(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** `frozen, overdraft 500, max 10000`: what differs from an open account with no limits. */
function policyText(account: Account): string {
  return [
    ...(account.status === 'open' ? [] : [account.status]),
    ...(account.overdraft_limit === 0n ? [] : [`overdraft ${account.overdraft_limit}`]),
    ...(account.max_balance === null ? [] : [`max ${account.max_balance}`]),
  ].join(', ');
}
