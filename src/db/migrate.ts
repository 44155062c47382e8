import { fileURLToPath } from 'node:url';
import { Logger, runMigrations as runGraphileWorkerMigrations } from 'graphile-worker';
import { runner } from 'node-pg-migrate';

export const sqlDirectory = fileURLToPath(new URL('../../sql', import.meta.url));

export interface MigrateOptions {
  connectionString: string;
  log?: (message: string) => void;
}

/**
 * graphile-worker installs its own schema first (our roles migration grants on it and
 * billing.submit calls graphile_worker.add_job), then node-pg-migrate applies sql/ in order,
 * under its advisory lock so that replicas started together migrate once.
 */
export async function migrate(options: MigrateOptions): Promise<string[]> {
  const log = options.log ?? (() => {});
  await runGraphileWorkerMigrations({ connectionString: options.connectionString, logger: quietLogger() });
  const applied = await runner({
    databaseUrl: options.connectionString,
    dir: sqlDirectory,
    migrationsTable: 'pgbilling_migrations',
    migrationsSchema: 'public',
    direction: 'up',
    checkOrder: true,
    singleTransaction: true,
    advisoryLockMode: 'wait',
    log: () => {},
    logger: { debug: () => {}, info: () => {}, warn: (m: string) => log(m), error: (m: string) => log(m) },
  });
  for (const migration of applied) log(`applied ${migration.name}`);
  return applied.map((migration) => migration.name);
}

function quietLogger(): Logger {
  return new Logger(() => () => {});
}
