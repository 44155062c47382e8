import { readdirSync } from 'node:fs';
import { HostClient } from '../db/hosts.ts';
import { sqlDirectory } from '../db/migrate.ts';

/** The database lacks the schema this worker needs: it must not create anything, just say so. */
export class NotMigratedError extends Error {
  constructor(detail: string) {
    super(`not migrated: run billing migrate (${detail})`);
    this.name = 'NotMigratedError';
  }
}

/**
 * Checks, reading only, that `billing migrate` has been run on this database: graphile-worker's
 * schema (which `run()` would otherwise create by itself), the billing tables, and, when this login
 * may read the migrations table (the owner; the worker role may not), every file of sql/.
 */
export async function assertMigrated(connectionString: string): Promise<void> {
  const client = new HostClient({ connectionString, application_name: 'pg-billing schema check' });
  // A connection lost mid-check rejects the query below; without a listener, node-pg's 'error'
  // event would also crash the process with a stack trace (seen in a chaos run's partition).
  client.on('error', () => {});
  await client.connect();
  try {
    const {
      rows: [found],
    } = await client.query<{ jobs: string | null; liveness: string | null; readable: boolean | null }>(`
      select to_regclass('graphile_worker.jobs')::text as jobs, to_regclass('billing.worker_liveness')::text as liveness,
        case when to_regclass('public.pgbilling_migrations') is null then null
             else has_table_privilege('public.pgbilling_migrations', 'select') end as readable`);
    if (!found?.jobs || !found.liveness) {
      throw new NotMigratedError(
        `${!found?.jobs ? 'no graphile_worker schema' : 'no billing schema'} in database "${client.database ?? '?'}"`,
      );
    }
    if (!found.readable) return;
    const { rows } = await client.query<{ name: string }>('select name from public.pgbilling_migrations');
    const applied = new Set(rows.map((row) => row.name));
    const pending = readdirSync(sqlDirectory)
      .filter((file) => file.endsWith('.sql'))
      .map((file) => file.slice(0, -4))
      .filter((name) => !applied.has(name))
      .sort();
    if (pending.length)
      throw new NotMigratedError(
        `${pending.length} migration${pending.length > 1 ? 's' : ''} pending: ${pending.join(', ')}`,
      );
  } finally {
    await client.end().catch(() => {});
  }
}
