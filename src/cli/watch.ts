import { Command } from 'commander';
import { CliError, findDatabase, loadCliConfig } from './context.ts';
import { withExamples } from './help.ts';
import { formatResult, resultJson } from './output.ts';
import { parseWhole } from './submit-command.ts';

interface WatchOptions {
  after?: string;
  json?: boolean;
  count?: number;
}

export function watchCommand(): Command {
  const command = new Command('watch')
    .summary('tail results as they commit, from a cursor')
    .description(
      'Print results as they commit, in seq order. Reads by cursor and reconnects by itself, ' +
        'so nothing is skipped or printed twice across lost connections and server restarts. Ctrl-C stops.',
    )
    .option('--after <seq>', 'start after this seq (0: from the first result; default: the current end)')
    .option('--json', 'one JSON line per result (amounts as strings)')
    .option('--count <n>', 'exit after this many results', parseWhole)
    .action(async (options: WatchOptions) => {
      if (options.after !== undefined && !/^[0-9]+$/.test(options.after))
        throw new CliError('--after: a seq, digits only');
      const { url } = await findDatabase(loadCliConfig());
      const { createBillingClient } = await import('../client/client.ts');
      const client = createBillingClient({
        connectionString: url,
        onListenerError: (error) =>
          console.error(`watch: listener: ${error.message} (reconnecting; no result is missed)`),
      });
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const after = options.after === undefined ? await client.lastSeq() : BigInt(options.after);
        if (!options.json) console.error(`watching results after #${after} (Ctrl-C stops)`);
        let printed = 0;
        if (options.count === 0) return;
        for await (const result of client.results({ after, signal: stop.signal })) {
          console.log(options.json ? resultJson(result) : formatResult(result));
          if (options.count !== undefined && ++printed >= options.count) break;
        }
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await client.close();
      }
    });
  return withExamples(command, [
    'billing watch',
    'billing watch --after 0 --json | jq .code',
    'billing watch --after 120 --count 10',
  ]);
}
