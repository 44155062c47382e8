import { Command, InvalidArgumentError, Option } from 'commander';
import { pointHelp, timestampWithZone } from '../client/balance-at.ts';
import type { Account, BalanceAt, BalancePoint } from '../client/types.ts';
import { maxInt64 } from '../commands/contract.ts';
import { CliError, findDatabase, loadCliConfig, toJson } from './context.ts';
import { exitCodes } from './exit-codes.ts';
import { withExamples } from './help.ts';
import { formatAccounts } from './output.ts';

/** `--at`: digits are a seq, anything else must be a time with a zone (sent as text: microseconds stay). */
function parsePoint(value: string): BalancePoint {
  if (/^[0-9]+$/.test(value)) {
    const seq = BigInt(value);
    if (seq > maxInt64) throw new InvalidArgumentError(`a seq is at most ${maxInt64}`);
    return seq;
  }
  if (!timestampWithZone.test(value)) throw new InvalidArgumentError(pointHelp.replace('a Date, or ', ''));
  return value;
}

export function balanceCommand(): Command {
  const command = new Command('balance')
    .summary('show balances of accounts, now or at a point in the past')
    .description(
      'Show balance, held and available of accounts (exit 2 if one does not exist). With --at, as the ' +
        'results in seq order left them at that point (SQL: billing.balance_at), with the seq that state ' +
        'is after: --at <seq> after every result up to that seq; --at <time> after every result sequenced ' +
        'by that time (every result committed by then). Exit 2 also for an account not open at that point.',
    )
    .argument('<account...>', 'account ids')
    .addOption(
      new Option(
        '--at <time|seq>',
        'a seq (digits) or a time, ISO 8601 with a zone: 2026-12-07T12:00:00Z, 2026-12-07 12:00:00.123456+00',
      ).argParser(parsePoint),
    )
    .option('--json', 'one JSON line per account (amounts as strings; {"account":..,"exists":false} when missing)')
    .action(async (accounts: string[], options: { json?: boolean; at?: BalancePoint }) => {
      const { url } = await findDatabase(loadCliConfig());
      const { createBillingClient } = await import('../client/client.ts');
      const client = createBillingClient({ connectionString: url });
      try {
        let found: Map<string, Account | BalanceAt>;
        if (options.at === undefined) found = await client.balances(accounts);
        else {
          found = new Map();
          for (const account of accounts) {
            const state = await client.balanceAt(account, options.at).catch((error: unknown) => {
              // A time that looks right but is none (month 13): the database said so.
              if (error instanceof RangeError)
                throw new CliError(`--at: ${error.message.replace(/^balanceAt: at: /, '')}`);
              throw error;
            });
            if (state) found.set(account, state);
          }
        }
        const rows = accounts.map((account) => found.get(account) ?? { account, missing: true as const });
        if (options.json) {
          for (const row of rows)
            console.log(toJson('missing' in row ? { account: row.account, exists: false } : { ...row, exists: true }));
        } else {
          console.log(formatAccounts(rows, options.at !== undefined));
        }
        process.exitCode = rows.some((row) => 'missing' in row) ? exitCodes.rejected : exitCodes.ok;
      } finally {
        await client.close();
      }
    });
  return withExamples(command, [
    'billing balance 1 2',
    'billing balance alice --json',
    'billing balance alice --at 12',
    "billing balance alice --at '2026-12-07 12:00:00+00'",
  ]);
}
