import { Command } from 'commander';
import { withExamples } from './help.ts';
import { parseAmount, submitAndPrint, withSubmitOptions, type SubmitOptions } from './submit-command.ts';

export function captureCommand(): Command {
  const command = new Command('capture')
    .summary('take (part of) a hold')
    .description(
      'Take a hold: its amount (or part of it) leaves the balance, or moves to --to; the rest is released; the hold closes.',
    )
    .argument('<hold>', 'hold id')
    .argument('[amount]', 'minor units to take (default: all of the hold)', parseAmount)
    .option('--to <account>', 'move the captured money to this account instead of taking it off');
  withSubmitOptions(command).action(
    async (hold: string, amount: bigint | undefined, options: SubmitOptions & { to?: string }) => {
      process.exitCode = await submitAndPrint(
        'capture',
        {
          hold,
          ...(amount === undefined ? {} : { amount }),
          ...(options.to === undefined ? {} : { to: options.to }),
        },
        options,
      );
    },
  );
  return withExamples(command, ['billing capture order-7', 'billing capture order-7 30 --to 2']);
}
