import { Command } from 'commander';
import { findDatabase, loadCliConfig, toJson } from './context.ts';
import { exitCodes } from './exit-codes.ts';
import { withExamples } from './help.ts';
import { formatAccounts } from './output.ts';

export function balanceCommand(): Command {
  const command = new Command('balance')
    .summary('show balances of accounts')
    .description('Show balance, held and available of accounts (exit 2 if one does not exist).')
    .argument('<account...>', 'account ids')
    .option('--json', 'one JSON line per account (amounts as strings; {"account":..,"exists":false} when missing)')
    .action(async (accounts: string[], options: { json?: boolean }) => {
      const { url } = await findDatabase(loadCliConfig());
      const { createBillingClient } = await import('../client/client.ts');
      const client = createBillingClient({ connectionString: url });
      try {
        const found = await client.balances(accounts);
        const rows = accounts.map((account) => found.get(account) ?? { account, missing: true as const });
        if (options.json) {
          for (const row of rows)
            console.log(toJson('missing' in row ? { account: row.account, exists: false } : { ...row, exists: true }));
        } else {
          console.log(formatAccounts(rows));
        }
        process.exitCode = rows.some((row) => 'missing' in row) ? exitCodes.rejected : exitCodes.ok;
      } finally {
        await client.close();
      }
    });
  return withExamples(command, ['billing balance 1 2', 'billing balance alice --json']);
}
