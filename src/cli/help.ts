import type { Command } from 'commander';

export const databaseHelp = `Database: DATABASE_URL (postgres://user:password@host:5432/db), or when it is unset the
embedded PostgreSQL that \`npm start\` (billing start) runs from this folder (BILLING_DATA_DIR).`;

/** Examples and the database note under a subcommand's --help. */
export function withExamples(command: Command, examples: string[]): Command {
  return command.addHelpText(
    'after',
    `\nExamples:\n${examples.map((line) => `  $ ${line}`).join('\n')}\n\n${databaseHelp}\n`,
  );
}
