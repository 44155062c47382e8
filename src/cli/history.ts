import { Command } from 'commander';
import { CliError, findDatabase, loadCliConfig } from './context.ts';
import { withExamples } from './help.ts';
import { formatResult, printable, resultJson } from './output.ts';
import { parseWhole } from './submit-command.ts';

interface HistoryOptions {
  after?: string;
  limit: number;
  json?: boolean;
}

export function historyCommand(): Command {
  const command = new Command('history')
    .summary("one account's results, applied and rejected, by seq")
    .description(
      'Print the results of the commands that named an account (or one of its holds), applied or ' +
        'rejected, in seq order, one page at a time (SQL: billing.account_history). The next page starts ' +
        'after the last seq printed: --after <seq>.',
    )
    .argument('<account>', 'account id')
    .option('--after <seq>', 'results after this seq (default 0: from the first)')
    .option('--limit <n>', 'most results to print', parseWhole, 100)
    .option('--json', 'one JSON line per result (amounts as strings)')
    .action(async (account: string, options: HistoryOptions) => {
      if (options.after !== undefined && !/^[0-9]+$/.test(options.after))
        throw new CliError('--after: a seq, digits only');
      const { url } = await findDatabase(loadCliConfig());
      const { createBillingClient } = await import('../client/client.ts');
      const client = createBillingClient({ connectionString: url });
      try {
        const page = await client.history(account, { after: BigInt(options.after ?? 0), limit: options.limit });
        for (const result of page) console.log(options.json ? resultJson(result) : formatResult(result));
        if (!options.json && page.length === options.limit) {
          console.error(`next page: billing history ${printable(account)} --after ${page.at(-1)!.seq}`);
        }
      } finally {
        await client.close();
      }
    });
  return withExamples(command, ['billing history alice', 'billing history alice --after 120 --limit 20 --json']);
}
