import { Command } from 'commander';
import { findDatabase, loadCliConfig } from './context.ts';
import { withExamples } from './help.ts';

export function migrateCommand(): Command {
  const command = new Command('migrate')
    .summary('install or update the database schema')
    .description(
      "Install graphile-worker's schema and apply sql/ in order (once, under an advisory lock: " +
        'replicas started together migrate once). Safe to run again.',
    )
    .action(async () => {
      const { url } = await findDatabase(loadCliConfig());
      const { migrate } = await import('../db/migrate.ts');
      const applied = await migrate({ connectionString: url, log: (message) => console.error(message) });
      console.log(
        applied.length ? applied.map((name) => `applied ${name}`).join('\n') : 'migrate: the database is up to date',
      );
    });
  return withExamples(command, ['DATABASE_URL=postgres://billing@db:5432/billing billing migrate']);
}
