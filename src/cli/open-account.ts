import { Command } from 'commander';
import { withExamples } from './help.ts';
import { submitAndPrint, withSubmitOptions, type SubmitOptions } from './submit-command.ts';

export function openAccountCommand(): Command {
  const command = new Command('open-account')
    .summary('open an account')
    .description('Open an account with balance 0. Rejected with account_exists if it is there already.')
    .argument('<account>', 'account id: 1 to 64 of A-Z a-z 0-9 _ . : @ -')
    .option('--currency <code>', 'three capital letters (default: BILLING_DEFAULT_CURRENCY, USD)');
  withSubmitOptions(command).action(async (account: string, options: SubmitOptions & { currency?: string }) => {
    process.exitCode = await submitAndPrint(
      'open_account',
      { account, ...(options.currency ? { currency: options.currency } : {}) },
      options,
    );
  });
  return withExamples(command, [
    'billing open-account 1',
    'billing open-account alice --currency EUR --id signup-alice --json',
  ]);
}
