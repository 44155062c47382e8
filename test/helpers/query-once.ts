import type pg from 'pg';
import { HostClient } from '../../src/db/hosts.ts';

/** One query on a connection of its own: works across server restarts, holds nothing afterwards. */
export async function queryOnce<R extends pg.QueryResultRow>(
  url: string,
  text: string,
  values?: unknown[],
): Promise<R[]> {
  const client = new HostClient({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}
