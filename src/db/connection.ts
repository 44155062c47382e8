import { HostClient, parseDatabaseUrl } from './hosts.ts';

/** The machine's own PostgreSQL, used when DATABASE_URL is not set and it answers. */
export const localServerUrl = 'postgres://postgres@127.0.0.1:5432/postgres';

/** A server URL from DATABASE_URL, else the local server if it answers; undefined when neither. */
export async function findServerUrl(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (env.DATABASE_URL) return env.DATABASE_URL;
  return (await answers(localServerUrl)) ? localServerUrl : undefined;
}

export async function resolveServerUrl(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const url = await findServerUrl(env);
  if (!url) throw new Error('no PostgreSQL: set DATABASE_URL or start one on 127.0.0.1:5432');
  return url;
}

/** The same server(s), another database (a multi-host URL keeps its hosts and settings). */
export function withDatabase(url: string, database: string): string {
  parseDatabaseUrl(url); // throws on what is not a postgres:// URL
  return url.replace(/^([a-z]+:\/\/[^/?#]*)(\/[^?#]*)?/i, `$1/${encodeURIComponent(database)}`);
}

/** True if a server that fits the URL (its target_session_attrs) answers. */
export async function answers(url: string): Promise<boolean> {
  const client = new HostClient({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on('error', () => {}); // the query rejects; the event must not crash the process
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}
