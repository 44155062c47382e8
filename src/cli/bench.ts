import { Command } from 'commander';
import { runScript } from './spawn-script.ts';

export function benchCommand(): Command {
  return new Command('bench')
    .summary('run the benchmark (options go to bench/bench.ts)')
    .description(
      'Run the benchmark (bench/bench.ts) on a fresh database of its own and print the table of SPEC targets. ' +
        'Every option goes to it: `billing bench --help` shows them.',
    )
    .argument('[options...]', 'passed to bench/bench.ts')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .action(async (args: string[]) => {
      process.exitCode = await runScript('bench/bench.ts', args);
    });
}
