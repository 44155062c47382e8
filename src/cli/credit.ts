import { Command } from 'commander';
import { withExamples } from './help.ts';
import { parseAmount, submitAndPrint, withSubmitOptions, type SubmitOptions } from './submit-command.ts';

export function creditCommand(): Command {
  const command = new Command('credit')
    .summary('add money to an account')
    .description('Add money to an account (balance += amount).')
    .argument('<account>', 'account id')
    .argument('<amount>', 'minor units (cents), digits only', parseAmount);
  withSubmitOptions(command).action(async (account: string, amount: bigint, options: SubmitOptions) => {
    process.exitCode = await submitAndPrint('credit', { account, amount }, options);
  });
  return withExamples(command, [
    'billing credit 1 777',
    'billing credit 1 777 --id deposit-2024-001 --metadata \'{"source":"bank"}\'',
  ]);
}
