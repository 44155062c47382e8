import type pg from 'pg';
import { maxInt64 } from '../commands/contract.ts';
import { accountPattern } from '../commands/fields.ts';
import type { BalanceAt, BalancePoint } from './types.ts';

/**
 * ISO 8601 with a zone, with `T` or a space between date and time (psql prints `2026-12-07
 * 12:00:00.123456+00`). A time without a zone is refused rather than read in some zone that may
 * not be the database's.
 */
export const timestampWithZone = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)$/i;

export const pointHelp =
  'a seq (a whole number, 0 to 9223372036854775807) or a time: a Date, or ISO 8601 with a zone ' +
  '(2026-12-07T12:00:00Z, 2026-12-07 12:00:00.123456+00)';

/** PostgreSQL's earliest timestamptz, 4714-11-24 BC: no account existed before it, and a Date there is out of range. */
const earliestTimestamp = Date.UTC(-4713, 10, 24);

/**
 * billing.balance_at for one account: undefined when the account was not open at that point (an
 * id that no account can have never was). A bad point is a TypeError or RangeError, before any query.
 */
export async function balanceAt(pool: pg.Pool, account: string, at: BalancePoint): Promise<BalanceAt | undefined> {
  checkPoint(at);
  if (typeof account !== 'string') throw new TypeError(`balanceAt: account must be a string, got ${typeof account}`);
  // billing.accounts' CHECK keeps every other id out; a \u0000 would not even reach PostgreSQL.
  if (!accountPattern.test(account)) return undefined;
  if (at instanceof Date && at.getTime() < earliestTimestamp) return undefined;
  const query =
    typeof at === 'bigint'
      ? 'select account, currency, balance, held, available, seq from billing.balance_at($1, after_seq => $2::int8)'
      : 'select account, currency, balance, held, available, seq from billing.balance_at($1, at => $2::timestamptz)';
  let rows: BalanceAt[];
  try {
    ({ rows } = await pool.query<BalanceAt>(query, [account, at]));
  } catch (error) {
    // A text that looks right but names no time (month 13, February 30, year 0).
    const code = (error as { code?: unknown }).code;
    if (code === '22007' || code === '22008')
      throw new RangeError(`balanceAt: at: ${(error as Error).message}`, { cause: error });
    throw error;
  }
  return rows[0];
}

function checkPoint(at: unknown): void {
  if (typeof at === 'bigint') {
    if (at < 0n || at > maxInt64) throw new RangeError(`balanceAt: at: ${pointHelp}; got ${at}`);
  } else if (at instanceof Date) {
    if (Number.isNaN(at.getTime())) throw new RangeError('balanceAt: at: an invalid Date');
  } else if (typeof at === 'string') {
    if (!timestampWithZone.test(at)) throw new RangeError(`balanceAt: at: ${pointHelp}; got ${JSON.stringify(at)}`);
  } else {
    // A number would be a seq that lost its digits past 2^53, or milliseconds taken for a seq.
    throw new TypeError(
      `balanceAt: at: ${pointHelp}; got ${at === null ? 'null' : typeof at} (a seq is a bigint: 12n)`,
    );
  }
}
