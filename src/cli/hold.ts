import { Command, InvalidArgumentError } from 'commander';
import { withExamples } from './help.ts';
import { parseAmount, parseWhole, submitAndPrint, withSubmitOptions, type SubmitOptions } from './submit-command.ts';

interface HoldOptions extends SubmitOptions {
  hold?: string;
  ttl?: number;
  expiresAt?: Date;
}

function parseDate(value: string): Date {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new InvalidArgumentError('an ISO 8601 timestamp, e.g. 2030-01-01T12:00:00Z');
  return date;
}

export function holdCommand(): Command {
  const command = new Command('hold')
    .summary('reserve money until capture, release or expiry')
    .description('Reserve money on an account (held += amount) until it is captured, released or expires.')
    .argument('<account>', 'account id')
    .argument('<amount>', 'minor units (cents), digits only', parseAmount)
    .option('--hold <id>', 'hold id for capture/release (default: the command id)')
    .option('--ttl <seconds>', 'release it by itself after this many seconds (at most 30 days)', parseWhole)
    .option('--expires-at <timestamp>', 'release it by itself at this time (ISO 8601)', parseDate);
  withSubmitOptions(command).action(async (account: string, amount: bigint, options: HoldOptions) => {
    process.exitCode = await submitAndPrint('hold', {
      account, amount,
      ...(options.hold === undefined ? {} : { hold: options.hold }),
      ...(options.ttl === undefined ? {} : { ttl_seconds: options.ttl }),
      ...(options.expiresAt === undefined ? {} : { expires_at: options.expiresAt }),
    }, options);
  });
  return withExamples(command, ['billing hold 1 50 --hold order-7', 'billing hold 1 50 --hold order-8 --ttl 600']);
}
