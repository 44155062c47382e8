import { Command } from 'commander';
import { withExamples } from './help.ts';
import { submitAndPrint, withSubmitOptions, type SubmitOptions } from './submit-command.ts';

export function releaseCommand(): Command {
  const command = new Command('release')
    .summary('give a hold back')
    .description('Give a hold back: held -= what remains of it; the hold closes.')
    .argument('<hold>', 'hold id');
  withSubmitOptions(command).action(async (hold: string, options: SubmitOptions) => {
    process.exitCode = await submitAndPrint('release', { hold }, options);
  });
  return withExamples(command, ['billing release order-8']);
}
