import type pg from 'pg';
import { HostClient } from '../../src/db/hosts.ts';
import { roleNamesFromEnv } from '../../src/db/migrate.ts';
import type { TestDatabase } from './database.ts';

/** A session in the client role: what an application login can do (billing.submit, reads), no more. */
export async function connectAsClientRole(database: TestDatabase): Promise<pg.Client> {
  const client = new HostClient({ connectionString: database.url });
  await client.connect();
  await client.query(`set role ${roleNamesFromEnv().client}`);
  return client;
}
