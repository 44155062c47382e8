import { Kysely, PostgresDialect } from 'kysely';
import type pg from 'pg';
import type { DB } from './schema.ts';

export type BillingDb = Kysely<DB>;

export function createKysely(pool: pg.Pool): BillingDb {
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
}
