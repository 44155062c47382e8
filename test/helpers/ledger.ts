import type { Selectable } from 'kysely';
import type { BalanceJson } from '../../src/commands/balances-json.ts';
import type { BillingOperations } from '../../src/db/schema.ts';
import type { TestDatabase } from './database.ts';
import { waitFor } from './wait.ts';

/**
 * A row of billing.operations (`select *`), typed by the generated schema; its json columns as
 * node-pg parses them: balances' amounts stay strings of digits, as stored.
 */
export type ResultRow = Omit<Selectable<BillingOperations>, 'balances' | 'request'> & {
  request: unknown;
  balances: BalanceJson[];
};

/** Enqueues a command the way an application does: graphile_worker.add_job from SQL. */
export async function enqueue(database: TestDatabase, type: string, payload: unknown): Promise<bigint> {
  const { rows } = await database.query<{ id: bigint }>('select (graphile_worker.add_job($1, $2::json)).id', [
    `billing/${type}`,
    JSON.stringify(payload),
  ]);
  return rows[0]!.id;
}

/**
 * Enqueues `count` jobs of `task` in one add_jobs call. `payload` is an SQL expression of `g`, the
 * job's number from 1; by default a credit to an account nobody opened (each ends rejected).
 */
export async function enqueueMany(
  database: TestDatabase,
  task: string,
  count: number,
  payload = `json_build_object('id', 'c' || g, 'account', 'nobody', 'amount', '1')`,
): Promise<void> {
  await database.query(
    `select count(*) from graphile_worker.add_jobs(array(
       select row($1::text, ${payload}, null, null, null, null, null, null)::graphile_worker.job_spec
       from generate_series(1, $2::int) g))`,
    [task, count],
  );
}

/** Waits for the result row of a command id. */
export async function resultOf(database: TestDatabase, id: string, timeoutMs = 15_000): Promise<ResultRow> {
  return waitFor(
    `the result of ${id}`,
    async () => (await database.query<ResultRow>('select * from billing.operations where id = $1', [id])).rows[0],
    timeoutMs,
  );
}

/** Enqueues and waits for the result. */
export async function run(
  database: TestDatabase,
  type: string,
  payload: { id: string } & Record<string, unknown>,
): Promise<ResultRow> {
  await enqueue(database, type, payload);
  return resultOf(database, payload.id);
}

/** Waits until no billing job is left in the queue (completed jobs are deleted). */
export async function drained(database: TestDatabase, timeoutMs = 15_000): Promise<void> {
  await waitFor(
    'the queue to drain',
    async () => {
      const { rows } = await database.query<{ n: bigint }>(
        "select count(*) as n from graphile_worker.jobs where task_identifier like 'billing/%' and run_at <= now() + interval '1 second'",
      );
      return rows[0]!.n === 0n ? true : undefined;
    },
    timeoutMs,
  );
}

/**
 * Waits until graphile-worker has completed these jobs (it deletes a completed job). A job that
 * failed and waits for a retry is an error here, not something to wait out.
 */
export async function jobsDone(database: TestDatabase, jobIds: bigint[], timeoutMs = 15_000): Promise<void> {
  await waitFor(
    `jobs ${jobIds.join(', ')} to complete`,
    async () => {
      const { rows } = await database.query<{ id: bigint; last_error: string | null }>(
        'select id, last_error from graphile_worker.jobs where id = any($1::int8[])',
        [jobIds],
      );
      const failed = rows.find((r) => r.last_error !== null);
      if (failed) throw new Error(`job ${failed.id} failed and waits for a retry: ${failed.last_error}`);
      return rows.length === 0 ? true : undefined;
    },
    timeoutMs,
  );
}

export async function balanceOf(
  database: TestDatabase,
  account: string,
): Promise<{ balance: bigint; held: bigint; available: bigint } | undefined> {
  const { rows } = await database.query<{ balance: bigint; held: bigint; available: bigint }>(
    'select balance, held, available from billing.accounts where account = $1',
    [account],
  );
  return rows[0];
}
