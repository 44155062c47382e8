#!/usr/bin/env node
// `billing`: the command line of pg-billing. One file per subcommand; this one wires them up and
// turns errors into the documented exit codes.
import { Command, CommanderError } from 'commander';
import { balanceCommand } from './balance.ts';
import { benchCommand } from './bench.ts';
import { chaosCommand } from './chaos.ts';
import { commandSubcommands } from './command-subcommand.ts';
import { CliError } from './context.ts';
import { demoCommand } from './demo.ts';
import { exitCodes, exitCodesHelp } from './exit-codes.ts';
import { historyCommand } from './history.ts';
import { migrateCommand } from './migrate.ts';
import { resultCommand } from './result.ts';
import { startCommand } from './start.ts';
import { urlCommand } from './url.ts';
import { verifyCommand } from './verify.ts';
import { watchCommand } from './watch.ts';
import { workerCommand } from './worker.ts';
import { defaultHttpPort } from '../config.ts';
import { serviceVersion } from '../version.ts';

/** With --json anywhere before `--`, errors are one JSON line on stderr too: {"error": ..., "exit_code": ...}. */
const jsonErrors = process.argv
  .slice(2, (process.argv.indexOf('--') + 1 || process.argv.length + 1) - 1)
  .includes('--json');

const program = new Command('billing')
  .description('pg-billing: balances in PostgreSQL, commands through a graphile-worker queue in the same database.')
  .version(serviceVersion, '-V, --version', 'print the version of pg-billing')
  .showHelpAfterError(!jsonErrors && '(add --help for usage)')
  .configureHelp({ sortSubcommands: false })
  .addHelpText(
    'after',
    `
Examples:
  $ npm start                      # embedded PostgreSQL + migrations + a worker, in one terminal
  $ billing demo                   # in another: the original task, balances 666 and 111
  $ billing transfer 1 2 111 --json
  $ billing watch --after 0
  $ psql "$(billing url)"          # the database the CLI uses, for other tools
  $ DATABASE_URL=postgres://billing@db:5432/billing billing worker

Environment:
  DATABASE_URL        the billing database (postgres://user:password@host:5432/db). When unset, the
                      CLI uses the embedded PostgreSQL that \`npm start\` runs from this folder.
  BILLING_DATA_DIR    folder of that embedded PostgreSQL (default <project>/.data/postgres)
  BILLING_HTTP_PORT   worker's /healthz /readyz /metrics port. Unset: ${defaultHttpPort}, or the next free one
                      (several workers on one host); set: exactly that one (taken: exit 1); 0: any free
  LOG_LEVEL           fatal, error, warn, info (default), debug, trace or silent; every setting is in
                      docs/configuration.md
Every setting is checked at start; a bad one is refused with a message naming it (exit 1).

From a checkout of the repository (bench/ and chaos/ are not part of the package): the benchmark,
\`billing bench --help\` (= \`npm run bench\`), and the bank test under faults, \`billing chaos --help\`.

${exitCodesHelp}
`,
  );

for (const command of [
  startCommand(),
  migrateCommand(),
  workerCommand(),
  ...commandSubcommands(),
  resultCommand(),
  balanceCommand(),
  historyCommand(),
  watchCommand(),
  verifyCommand(),
  demoCommand(),
  benchCommand(),
  chaosCommand(),
  urlCommand(),
]) {
  program.addCommand(command);
}

// Every subcommand that finds the embedded server through its data folder takes --data-dir, as
// `start` does (start has its own; chaos runs a cluster of its own). It is BILLING_DATA_DIR for this
// command, and for the scripts `bench` starts.
for (const command of program.commands) {
  if (command.name() === 'start' || command.name() === 'chaos') continue;
  command
    .option('--data-dir <path>', 'folder of the embedded PostgreSQL to use without DATABASE_URL (as BILLING_DATA_DIR)')
    .hook('preAction', (_program, action) => {
      const dataDir = action.opts<{ dataDir?: string }>().dataDir;
      if (dataDir !== undefined) process.env.BILLING_DATA_DIR = dataDir;
    });
}

// Usage errors exit 1 (commander's default), as documented; --help exits 0. Every error line starts
// with `billing:`, commander's own included. With --json, commander's error text is replaced by the
// JSON line below.
for (const command of [program, ...program.commands]) {
  command.exitOverride();
  command.configureOutput({
    outputError: jsonErrors ? () => {} : (text, write) => write(commanderMessage(text, 'billing: ')),
  });
}

let exitCode: number;
try {
  await program.parseAsync(process.argv);
  exitCode = typeof process.exitCode === 'number' ? process.exitCode : exitCodes.ok;
} catch (error) {
  if (error instanceof CommanderError) {
    exitCode = error.exitCode === 0 ? exitCodes.ok : exitCodes.error;
    if (exitCode !== exitCodes.ok && jsonErrors) report(commanderMessage(error.message, ''), exitCode);
  } else if (error instanceof CliError) {
    exitCode = error.exitCode;
    report(error.message, exitCode, error.details);
  } else {
    exitCode = exitCodes.error;
    report(describe(error), exitCode);
  }
}
// Leftover sockets or timers must not keep a finished command alive.
process.exit(exitCode);

function report(message: string, exitCode: number, details: Record<string, string> = {}): void {
  if (jsonErrors) console.error(JSON.stringify({ error: message, exit_code: exitCode, ...details }));
  else console.error(`billing: ${message}`);
}

/**
 * Commander's message with our prefix for its `error: `, and `is invalid: <why>` for its
 * `is invalid. <why>` (the why is our parsers' text, e.g. "expected a whole number of 1 or more").
 */
function commanderMessage(text: string, prefix: string): string {
  return text.replace(/^error: /, prefix).replace(/(is invalid(?: for argument '[^']*')?)\. /, '$1: ');
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  if (code === 'ECONNREFUSED')
    return `cannot reach PostgreSQL (${error.message}): is it running, and is DATABASE_URL right?`;
  if (code === '42P01' || code === '3F000' || code === '42883')
    return `${error.message}: is the database migrated? run \`billing migrate\``;
  return process.env.LOG_LEVEL === 'debug' ? (error.stack ?? error.message) : error.message;
}
