import type pg from 'pg';
import { HostClient } from '../src/db/hosts.ts';

export interface QueryOnceOptions {
  applicationName?: string;
  /** How long to wait for the connection; pg's default waits as long as the OS does. */
  connectionTimeoutMillis?: number;
}

/**
 * One query on a connection of its own, opened and closed around it: it works across server
 * restarts and terminated backends (the chaos harness and the restart tests), and holds nothing
 * afterwards.
 */
export async function queryOnce<R extends pg.QueryResultRow>(
  url: string,
  text: string,
  values: unknown[] = [],
  options: QueryOnceOptions = {},
): Promise<R[]> {
  const client = new HostClient({
    connectionString: url,
    ...(options.connectionTimeoutMillis === undefined
      ? {}
      : { connectionTimeoutMillis: options.connectionTimeoutMillis }),
    ...(options.applicationName === undefined ? {} : { application_name: options.applicationName }),
  });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * The chaos harness's own one-off queries: a short connect timeout (a server being restarted must
 * not hold the harness up), and a name that tells them apart in pg_stat_activity.
 */
export function harnessQuery(applicationName: string) {
  return <R extends pg.QueryResultRow>(url: string, text: string, values: unknown[] = []) =>
    queryOnce<R>(url, text, values, { applicationName, connectionTimeoutMillis: 3000 });
}
