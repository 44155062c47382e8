import type pg from 'pg';
import { hotAccount } from './database.ts';

/**
 * What share of transfers touches the hot account `a0` (as sender or receiver, half each), and
 * whether each command is a transfer or a payment with its fee: a two-leg transaction, the
 * transfer's from -> to, then a fee of 1 from `to` to the account after it.
 */
export type Mix = { hotShare: number; paymentWithFee?: boolean };
export const uniform: Mix = { hotShare: 0 };
export const hot: Mix = { hotShare: 0.9 };
export const paymentWithFee: Mix = { hotShare: 0, paymentWithFee: true };

/**
 * Enqueues `count` transfer commands (transactions for `mix.paymentWithFee`) with one
 * `graphile_worker.add_jobs` call, payloads built in SQL
 * (the load generator shares the 2 cores: it should cost as little as it can). Ids are
 * `<prefix><n>` for n from `first`. Other accounts are `a1` .. `a<accounts-1>`, never the same twice.
 * `perJob` 1 makes one job per command; more makes batch jobs, an array of `perJob` commands each.
 */
export async function enqueueTransfers(
  pool: pg.Pool,
  prefix: string,
  first: number,
  count: number,
  accounts: number,
  mix: Mix,
  perJob = 1,
): Promise<void> {
  const command = mix.paymentWithFee
    ? `json_build_object('id', $1 || g, 'legs', json_build_array(
         json_build_object('from', 'a' || f, 'to', 'a' || t, 'amount', amount::text),
         json_build_object('from', 'a' || t, 'to', 'a' || (1 + t % ($4 - 1)), 'amount', '1')))`
    : `json_build_object('id', $1 || g, 'from', 'a' || f, 'to', 'a' || t, 'amount', amount::text)`;
  const commands = `
    select g, ${command} as command
    from (select g, amount,
                 case when hot then (case when hot_sends then 0 else x end) else x end as f,
                 case when hot then (case when hot_sends then x else 0 end) else 1 + ((x + y) % ($4 - 1)) end as t
          from (select g, random() < $5 as hot, random() < 0.5 as hot_sends,
                       1 + floor(random() * ($4 - 1))::int as x, floor(random() * ($4 - 2))::int as y,
                       1 + floor(random() * 100)::int as amount
                from generate_series($2::bigint, $2::bigint + $3 - 1) as g) as r) as p`;
  const jobs =
    perJob === 1
      ? `select command as payload from (${commands}) as c`
      : `select json_agg(command order by g) as payload from (${commands}) as c group by g / $6::int`;
  await pool.query(
    `
    select count(*) from graphile_worker.add_jobs(array(
      select row('billing/${mix.paymentWithFee ? 'transaction' : 'transfer'}', payload, null, null, null, null, null, null)::graphile_worker.job_spec
      from (${jobs}) as j))`,
    perJob === 1
      ? [prefix, first, count, accounts, mix.hotShare]
      : [prefix, first, count, accounts, mix.hotShare, perJob],
  );
}

/** One random uniform transfer, for the paced latency run and the raw ceiling. */
export function randomTransfer(accounts: number): { from: string; to: string; amount: string } {
  const x = 1 + Math.floor(Math.random() * (accounts - 1));
  const y = Math.floor(Math.random() * (accounts - 2));
  const to = 1 + ((x + y) % (accounts - 1));
  return { from: `a${x}`, to: `a${to}`, amount: String(1 + Math.floor(Math.random() * 100)) };
}

export { hotAccount };
