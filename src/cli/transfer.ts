import { Command } from 'commander';
import { withExamples } from './help.ts';
import { parseAmount, submitAndPrint, withSubmitOptions, type SubmitOptions } from './submit-command.ts';

export function transferCommand(): Command {
  const command = new Command('transfer')
    .summary('move money between two accounts')
    .description('Move money between two accounts of the same currency, in one transaction.')
    .argument('<from>', 'account the money leaves')
    .argument('<to>', 'account the money goes to')
    .argument('<amount>', 'minor units (cents), digits only', parseAmount);
  withSubmitOptions(command).action(async (from: string, to: string, amount: bigint, options: SubmitOptions) => {
    process.exitCode = await submitAndPrint('transfer', { from, to, amount }, options);
  });
  return withExamples(command, ['billing transfer 1 2 111', 'billing transfer 1 2 111 --id order-42-pay --json']);
}
