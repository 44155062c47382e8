import { Command } from 'commander';
import { findDatabase, loadCliConfig } from './context.ts';
import { withExamples } from './help.ts';

// For the tools that are not this CLI (psql, pg_dump, an application): the embedded server that
// `npm start` runs is on a port of its choosing, and DATABASE_URL is unset in the terminal next to it.
export function urlCommand(): Command {
  const command = new Command('url')
    .summary('print the URL of the database the CLI uses (for psql and other tools)')
    .description(
      'Print the connection URL of the database every other subcommand would use: DATABASE_URL when it is ' +
        'set, else the embedded PostgreSQL that `npm start` runs from this folder (exit 1 when there is none).',
    )
    .action(async () => {
      const { url } = await findDatabase(loadCliConfig());
      console.log(url);
    });
  return withExamples(command, ['psql "$(npx billing url)"', 'billing url --data-dir /tmp/billing-pg']);
}
