import { Command, Option } from 'commander';
import { CliError, findDatabase, loadCliConfig } from './context.ts';
import { withExamples } from './help.ts';
import { formatResult, printable, resultJson } from './output.ts';
import { parseCount } from './submit-command.ts';

interface HistoryOptions {
  after?: string;
  before?: string;
  oldest?: boolean;
  limit: number;
  json?: boolean;
}

const seqPattern = /^[0-9]+$/;

export function historyCommand(): Command {
  const command = new Command('history')
    .summary("one account's results, applied and rejected, by seq (the newest by default)")
    .description(
      'Print the results of the commands that named an account (or one of its holds), applied or ' +
        'rejected, in seq order, one page at a time (SQL: billing.account_history and ' +
        'billing.account_history_before). By default the newest page (the last --limit results); ' +
        '--before <seq> is the page before it, --oldest the first page and --after <seq> the page after ' +
        'that seq. The command to fetch the next page is printed on stderr.',
    )
    .argument('<account>', 'account id')
    .addOption(new Option('--oldest', 'from the first result on, instead of the newest').conflicts(['after', 'before']))
    .addOption(new Option('--after <seq>', 'the results after this seq, oldest first').conflicts('before'))
    .option('--before <seq>', 'the results just before this seq (the page before a newest page)')
    .option('--limit <n>', 'most results to print, 1 or more', parseCount, 100)
    .option('--json', 'one JSON line per result (amounts as strings)')
    .action(async (account: string, options: HistoryOptions) => {
      for (const [name, value] of [
        ['--after', options.after],
        ['--before', options.before],
      ] as const)
        if (value !== undefined && !seqPattern.test(value)) throw new CliError(`${name}: a seq, digits only`);
      const forward = options.oldest || options.after !== undefined;
      const { url } = await findDatabase(loadCliConfig());
      const { createBillingClient } = await import('../client/client.ts');
      const client = createBillingClient({ connectionString: url });
      try {
        const page = await client.history(
          account,
          forward
            ? { after: BigInt(options.after ?? 0), limit: options.limit }
            : { before: options.before === undefined ? 'end' : BigInt(options.before), limit: options.limit },
        );
        for (const result of page) console.log(options.json ? resultJson(result) : formatResult(result));
        // A full page may have more beyond it: say how to get them (not with --json: stderr stays for errors).
        if (!options.json && page.length === options.limit) {
          console.error(
            forward
              ? `next page: billing history ${printable(account)} --after ${page.at(-1)!.seq}`
              : `earlier results: billing history ${printable(account)} --before ${page[0]!.seq}`,
          );
        }
      } finally {
        await client.close();
      }
    });
  return withExamples(command, [
    'billing history alice',
    'billing history alice --limit 3',
    'billing history alice --oldest --limit 20 --json',
    'billing history alice --after 120 --limit 20',
  ]);
}
