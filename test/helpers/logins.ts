import type pg from 'pg';
import { HostClient } from '../../src/db/hosts.ts';
import { resolveServerUrl } from '../../src/db/connection.ts';
import type { TestDatabase } from './database.ts';

export interface Logins<K extends string> {
  /** Login user names, unique to this process (roles are cluster-wide; test files run in parallel). */
  users: Record<K, string>;
  urlAs(user: string): string;
  /** A session as `user`, ended by `drop()`. */
  connectAs(user: string): Promise<pg.Client>;
  /** Ends the sessions, then (after `dropDatabase`) drops the users. */
  drop(dropDatabase: () => Promise<void>): Promise<void>;
}

/** One login user per key, each a member of the group role given for it. */
export async function createLogins<K extends string>(
  database: TestDatabase,
  label: string,
  memberOf: Record<K, string>,
): Promise<Logins<K>> {
  const users = Object.fromEntries(
    Object.keys(memberOf).map((key) => [key, `pgb_${label}_${key}_${process.pid}`.toLowerCase()]),
  ) as Record<K, string>;
  for (const key of Object.keys(memberOf) as K[]) {
    await database.query(`drop user if exists ${users[key]}`);
    await database.query(`create user ${users[key]} in role ${memberOf[key]}`);
  }
  const sessions: pg.Client[] = [];
  const urlAs = (user: string) => {
    const url = new URL(database.url);
    url.username = user;
    url.password = '';
    return url.toString();
  };
  return {
    users,
    urlAs,
    async connectAs(user) {
      const session = new HostClient({ connectionString: urlAs(user) });
      await session.connect();
      sessions.push(session);
      return session;
    },
    async drop(dropDatabase) {
      await Promise.all(sessions.map((session) => session.end().catch(() => {})));
      await dropDatabase();
      const admin = new HostClient({ connectionString: await resolveServerUrl() });
      await admin.connect();
      for (const user of Object.values<string>(users)) await admin.query(`drop user if exists ${user}`);
      await admin.end();
    },
  };
}
