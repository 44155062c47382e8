import { Command } from 'commander';
import { withExamples } from './help.ts';
import { parseAmount, submitAndPrint, withSubmitOptions, type SubmitOptions } from './submit-command.ts';

export function debitCommand(): Command {
  const command = new Command('debit')
    .summary('take money off an account')
    .description(
      'Take money off an account (balance -= amount); rejected with insufficient_funds if available < amount.',
    )
    .argument('<account>', 'account id')
    .argument('<amount>', 'minor units (cents), digits only', parseAmount);
  withSubmitOptions(command).action(async (account: string, amount: bigint, options: SubmitOptions) => {
    process.exitCode = await submitAndPrint('debit', { account, amount }, options);
  });
  return withExamples(command, ['billing debit 1 100', 'billing debit 1 100 --json || echo "rejected or failed: $?"']);
}
