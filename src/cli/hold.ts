import { Command, InvalidArgumentError } from 'commander';
import { withExamples } from './help.ts';
import { parseAmount, parseWhole, submitAndPrint, withSubmitOptions, type SubmitOptions } from './submit-command.ts';

interface HoldOptions extends SubmitOptions {
  hold?: string;
  ttl?: number;
  expiresAt?: Date;
}

/**
 * The worker's own rule for `expires_at` (src/commands/parse.ts): ISO 8601 with a zone. A time
 * without one is refused rather than read in this machine's zone, which may not be the database's.
 */
function parseDate(value: string): Date {
  const withZone = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/i;
  const date = new Date(value);
  if (!withZone.test(value) || Number.isNaN(date.getTime())) {
    throw new InvalidArgumentError(
      'an ISO 8601 timestamp with a time zone, e.g. 2030-01-01T12:00:00Z or 2030-01-01T14:00:00+02:00',
    );
  }
  return date;
}

export function holdCommand(): Command {
  const command = new Command('hold')
    .summary('reserve money until capture, release or expiry')
    .description(
      'Reserve money on an account (held += amount) until it is captured, released or expires. ' +
        'An expiry (--ttl or --expires-at) is at most 30 days ahead; the service releases the hold itself within 5 s of it.',
    )
    .argument('<account>', 'account id')
    .argument('<amount>', 'minor units (cents), digits only', parseAmount)
    .option('--hold <id>', 'hold id for capture/release (default: the command id)')
    .option('--ttl <seconds>', 'release it by itself after this many seconds (at most 30 days: 2592000)', parseWhole)
    .option(
      '--expires-at <timestamp>',
      'release it by itself at this time: ISO 8601 with a zone, at most 30 days ahead',
      parseDate,
    );
  withSubmitOptions(command).action(async (account: string, amount: bigint, options: HoldOptions) => {
    process.exitCode = await submitAndPrint(
      'hold',
      {
        account,
        amount,
        ...(options.hold === undefined ? {} : { hold: options.hold }),
        ...(options.ttl === undefined ? {} : { ttl_seconds: options.ttl }),
        ...(options.expiresAt === undefined ? {} : { expires_at: options.expiresAt }),
      },
      options,
    );
  });
  return withExamples(command, [
    'billing hold 1 50 --hold order-7',
    'billing hold 1 50 --hold order-8 --ttl 600',
    'billing hold 1 50 --hold order-9 --expires-at 2030-01-01T12:00:00Z',
  ]);
}
