import type pg from 'pg';
import { HostClient } from '../src/db/hosts.ts';

/**
 * One query on a connection of its own, opened and closed around it: the chaos harness must keep
 * working while the server restarts and backends are terminated, so it holds no pooled connection.
 */
export async function queryOnce<R extends pg.QueryResultRow>(
  url: string,
  text: string,
  values: unknown[] = [],
  applicationName = 'chaos-monitor',
): Promise<R[]> {
  const client = new HostClient({
    connectionString: url,
    connectionTimeoutMillis: 3000,
    application_name: applicationName,
  });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}
