import pg from 'pg';
import { HostClient } from '../src/db/hosts.ts';
import { withDatabase } from '../src/db/connection.ts';
import { migrate } from '../src/db/migrate.ts';

export interface BenchDatabase {
  url: string;
  name: string;
  /** The bench's own connections: enqueueing, counting, the database clock. */
  pool: pg.Pool;
  accounts: number;
  drop(): Promise<void>;
}

/** The hot account of the hot-account run; every other account is `a1` .. `a<n-1>`. */
export const hotAccount = 'a0';
const seedBalance = 1_000_000_000_000n;
const hotSeedBalance = 1_000_000_000_000_000n;

/**
 * A fresh database, migrated, with `accounts` funded accounts. Seeding writes what credit commands
 * would have written (an operation and a journal entry per account) so that verify holds from the start.
 */
export async function createBenchDatabase(serverUrl: string, accounts: number, label: string): Promise<BenchDatabase> {
  const name = `pgbilling_bench_${label}_${process.pid}`;
  await admin(serverUrl, async (client) => {
    await client.query(`drop database if exists ${name} with (force)`);
    await client.query(`create database ${name}`);
  });
  const url = withDatabase(serverUrl, name);
  await migrate({ connectionString: url });
  const pool = new pg.Pool({
    Client: HostClient,
    connectionString: url,
    max: 24,
    application_name: 'pg-billing-bench',
  });
  pool.on('error', () => {});
  const seed = async (from: number, to: number) => {
    const client = await pool.connect();
    try {
      await client.query('begin');
      await client.query(
        `insert into billing.accounts (account, currency, balance)
        select 'a' || g, 'USD', case when g = 0 then $3::int8 else $4::int8 end from generate_series($1::int, $2::int) as g`,
        [from, to, String(hotSeedBalance), String(seedBalance)],
      );
      await client.query(
        `insert into billing.operations (id, type, status, code, request, fingerprint, balances)
        select 'seed:a' || g, 'credit', 'applied', 'ok', json_build_object('account', 'a' || g, 'amount', b::text), 'seed',
               json_build_array(json_build_object('account', 'a' || g, 'balance', b::text, 'held', '0'))
        from generate_series($1::int, $2::int) as g, lateral (select case when g = 0 then $3::int8 else $4::int8 end as b) as s`,
        [from, to, String(hotSeedBalance), String(seedBalance)],
      );
      await client.query(
        `insert into billing.entries (operation_id, account, balance_delta, held_delta, balance_after, held_after)
        select 'seed:a' || g, 'a' || g, b, 0, b, 0
        from generate_series($1::int, $2::int) as g, lateral (select case when g = 0 then $3::int8 else $4::int8 end as b) as s`,
        [from, to, String(hotSeedBalance), String(seedBalance)],
      );
      await client.query('commit');
    } catch (error) {
      await client.query('rollback').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  };
  const chunk = 100_000;
  for (let from = 0; from < accounts; from += chunk) await seed(from, Math.min(accounts, from + chunk) - 1);
  await pool.query('analyze');
  return {
    url,
    name,
    pool,
    accounts,
    async drop() {
      await pool.end().catch(() => {});
      await admin(serverUrl, (client) => client.query(`drop database if exists ${name} with (force)`));
    },
  };
}

async function admin<T>(serverUrl: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new HostClient({ connectionString: serverUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** The database's clock, in seconds: every time in the bench comes from it. */
export async function databaseSeconds(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ t: number }>('select extract(epoch from clock_timestamp())::float8 as t');
  return rows[0]!.t;
}

/** Highest result seq so far; results are counted by seq ranges. */
export async function highestSeq(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ s: string | null }>('select max(seq)::text as s from billing.operations');
  return Number(rows[0]!.s ?? 0);
}

export async function resultsAfter(pool: pg.Pool, seq: number): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(
    'select count(*)::text as n from billing.operations where seq > $1',
    [seq],
  );
  return Number(rows[0]!.n);
}
