import { Command, InvalidArgumentError, Option } from 'commander';
import { clientCommands } from '../commands/command.ts';
import { withExamples } from './help.ts';
import { parseAmount, parseWhole, submitAndPrint, withSubmitOptions, type SubmitOptions } from './submit-command.ts';

/**
 * The worker's own rule for `expires_at` (src/commands/fields.ts): ISO 8601 with a zone. A time
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

/**
 * A transaction's leg, `FROM,TO,AMOUNT` with FROM or TO empty for money in or out; each --leg
 * adds one, in the order given. Commas, not colons: an account id may hold a colon.
 */
function parseLeg(value: string, previous: unknown): { from?: string; to?: string; amount: bigint }[] {
  const parts = value.split(',');
  if (parts.length !== 3 || (parts[0] === '' && parts[1] === ''))
    throw new InvalidArgumentError('FROM,TO,AMOUNT with FROM or TO (or both), e.g. alice,bob,100 or ,alice,100');
  const [from, to, amount] = parts as [string, string, string];
  const leg = { ...(from === '' ? {} : { from }), ...(to === '' ? {} : { to }), amount: parseAmount(amount) };
  return [...(Array.isArray(previous) ? previous : []), leg];
}

/**
 * The payload's null, as an option parser returns it: commander turns a parser's null into ''
 * (its value for an option given without one), so null travels as this until the payload is built.
 */
const nullValue = Symbol('null');

/** A ceiling: minor units, or `none` to remove it (the payload's null). */
function parseCeiling(value: string): bigint | typeof nullValue {
  if (value === 'none') return nullValue;
  if (!/^[0-9]+$/.test(value)) throw new InvalidArgumentError('a whole number of minor units, digits only, or none');
  return BigInt(value);
}

/** How the command line's text becomes a field's value, where it is not kept as text. */
const parsers: { [field: string]: (value: string, previous: unknown) => unknown } = {
  amount: parseAmount,
  overdraft_limit: parseAmount,
  max_balance: parseCeiling,
  ttl_seconds: parseWhole,
  expires_at: parseDate,
  legs: parseLeg,
};

/** The subcommand of a command, from its declaration: arguments and options fill payload fields. */
function commandSubcommand(declaration: (typeof clientCommands)[number]): Command {
  const cli = declaration.cli;
  const command = new Command(cli.name).summary(cli.summary).description(cli.description);
  for (const argument of cli.arguments) {
    const name = argument.optional ? `[${argument.field}]` : `<${argument.field}>`;
    const parse = parsers[argument.field];
    if (parse) command.argument(name, argument.help, (value: string) => parse(value, undefined));
    else command.argument(name, argument.help);
  }
  const options = cli.options.map((declared) => {
    const option = new Option(declared.flags, declared.help);
    const parse = parsers[declared.field];
    command.addOption(parse ? option.argParser(parse) : option);
    return { field: declared.field, attribute: option.attributeName() };
  });
  withSubmitOptions(command).action(async (...args: unknown[]) => {
    const values = args.slice(0, cli.arguments.length);
    const given = args[cli.arguments.length] as SubmitOptions & { [attribute: string]: unknown };
    const input: { [field: string]: unknown } = {};
    cli.arguments.forEach((argument, index) => {
      if (values[index] !== undefined) input[argument.field] = values[index];
    });
    for (const { field, attribute } of options) {
      const value = given[attribute];
      if (value !== undefined) input[field] = value === nullValue ? null : value;
    }
    process.exitCode = await submitAndPrint(declaration.type, input as never, given);
  });
  return withExamples(command, [...cli.examples]);
}

/** One subcommand per command a client sends (`billing credit`, `billing open-account`, ...). */
export function commandSubcommands(): Command[] {
  return clientCommands.map(commandSubcommand);
}
