import { Command } from 'commander';
import { findDatabase, loadCliConfig } from './context.ts';
import { exitCodes } from './exit-codes.ts';
import { withExamples } from './help.ts';
import { formatResult, printable, resultJson } from './output.ts';

export function resultCommand(): Command {
  const command = new Command('result')
    .summary('look up the stored result of a command id (enqueues nothing)')
    .description(
      'Look up the one durable result of a command id in billing.operations, without sending anything: ' +
        'what to run after a timeout. Exit 0 applied, 2 rejected, 3 no result stored under that id (not applied yet, or never sent).',
    )
    .argument('<id>', 'command id (as given with --id, or as printed)')
    .option('--json', 'print the result as one JSON line (amounts as strings)')
    .action(async (id: string, options: { json?: boolean }) => {
      const { url } = await findDatabase(loadCliConfig());
      const { createBillingClient } = await import('../client/client.ts');
      const client = createBillingClient({ connectionString: url });
      try {
        const result = await client.result(id);
        if (!result) {
          if (options.json) console.log(JSON.stringify({ id, found: false }));
          else
            console.error(
              `billing: no result for command ${printable(id)}: not applied yet (is a worker running?), or never sent`,
            );
          process.exitCode = exitCodes.noResult;
          return;
        }
        console.log(options.json ? resultJson(result) : formatResult(result));
        process.exitCode = result.status === 'applied' ? exitCodes.ok : exitCodes.rejected;
      } finally {
        await client.close();
      }
    });
  return withExamples(command, ['billing result order-42-pay', 'billing result order-42-pay --json']);
}
