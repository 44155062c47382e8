import pg from 'pg';
import { roleNamesFromEnv } from '../../src/db/migrate.ts';
import type { TestDatabase } from './database.ts';

/** A session in the client role: what an application login can do (billing.submit, reads), no more. */
export async function connectAsClientRole(database: TestDatabase): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  await client.query(`set role ${roleNamesFromEnv().client}`);
  return client;
}
