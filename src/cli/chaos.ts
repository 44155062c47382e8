import { Command } from 'commander';
import { runScript } from './spawn-script.ts';

export function chaosCommand(): Command {
  return new Command('chaos')
    .summary('run the bank test under faults (options go to chaos/chaos.ts)')
    .description(
      'Run the bank test under faults (chaos/chaos.ts) on a PostgreSQL cluster of its own. ' +
        'Every option goes to it: `billing chaos --help` shows them.',
    )
    .argument('[options...]', 'passed to chaos/chaos.ts')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .action(async (args: string[]) => {
      process.exitCode = await runScript('chaos/chaos.ts', args);
    });
}
