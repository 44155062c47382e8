import type pg from 'pg';
import { HostClient } from '../../src/db/hosts.ts';
import { createKysely, type BillingDb } from '../../src/db/kysely.ts';
import { createPool } from '../../src/db/pool.ts';
import { migrate } from '../../src/db/migrate.ts';
import { resolveServerUrl, withDatabase } from '../../src/db/connection.ts';

export interface TestDatabase {
  url: string;
  name: string;
  pool: pg.Pool;
  db: BillingDb;
  /** Runs SQL as the superuser of the test database. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
  drop(): Promise<void>;
}

/**
 * A fresh, migrated database for one test file (tap runs files in parallel, one process each), on
 * the server that DATABASE_URL names, else the local one. Dropped by `drop()`.
 */
export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const serverUrl = await resolveServerUrl();
  const name = `pgbilling_t_${label.replace(/\W/g, '_').slice(0, 30)}_${process.pid}`.toLowerCase();
  const admin = new HostClient({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${name} with (force)`);
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = withDatabase(serverUrl, name);
  await migrate({ connectionString: url });
  const pool = createPool({ connectionString: url, max: 8, applicationName: 'pg-billing-test' });
  const db = createKysely(pool);
  return {
    url,
    name,
    pool,
    db,
    query: (text, values) => pool.query(text, values),
    async drop() {
      await db.destroy();
      const again = new HostClient({ connectionString: serverUrl });
      await again.connect();
      await again.query(`drop database if exists ${name} with (force)`);
      await again.end();
    },
  };
}
