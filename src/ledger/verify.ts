import { sql } from 'kysely';
import { taskNames, typesThatMoveNoMoney } from '../commands/command.ts';
import { holdExpiry, taskPrefix } from '../commands/contract.ts';
import type { BillingDb } from '../db/kysely.ts';

export interface VerifyCheck {
  name: string;
  /** Rows that break the rule; 0 means the check passed. */
  violations: number;
  /** A few examples, for the operator. */
  examples: string[];
  /** Checks about the queue are warnings: nothing in the ledger is wrong, but something waits. */
  severity: 'breach' | 'warning';
}

export interface VerifyReport {
  ok: boolean;
  accounts: number;
  entries: number;
  operations: number;
  checks: VerifyCheck[];
}

/**
 * Checks the ledger in one snapshot: every account's journal is a gapless chain from zero to the
 * account row, every row and entry is within its overdraft and ceiling, active holds add up to
 * `held`, the constraints that guarantee all this are in place, and no billing job is stuck.
 */
export async function verifyLedger(db: BillingDb): Promise<VerifyReport> {
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      await sql`set transaction read only`.execute(trx);
      const checks: VerifyCheck[] = [];
      const check = async (
        name: string,
        severity: VerifyCheck['severity'],
        query: ReturnType<typeof sql<{ example: string }>>,
      ) => {
        const { rows } = await query.execute(trx);
        checks.push({ name, severity, violations: rows.length, examples: rows.slice(0, 5).map((r) => r.example) });
      };

      await check(
        'journal chains: each entry = previous values + its deltas, from zero',
        'breach',
        sql<{ example: string }>`
      select format('entry %s of %s', id, account) as example from (
        select id, account, balance_delta, held_delta, balance_after, held_after,
               lag(balance_after, 1, 0::bigint) over w as prev_balance,
               lag(held_after, 1, 0::bigint) over w as prev_held
        from billing.entries window w as (partition by account order by id)) as chained
      where balance_after <> prev_balance + balance_delta or held_after <> prev_held + held_delta`,
      );

      await check(
        'journal ends at the account row',
        'breach',
        sql<{ example: string }>`
      select format('%s: row %s/%s, journal %s/%s', a.account, a.balance, a.held,
                    coalesce(last.balance_after, 0), coalesce(last.held_after, 0)) as example
      from billing.accounts as a
      left join lateral (select balance_after, held_after from billing.entries as e
                         where e.account = a.account order by id desc limit 1) as last on true
      where coalesce(last.balance_after, 0) <> a.balance or coalesce(last.held_after, 0) <> a.held`,
      );

      await check(
        'within limits: held >= 0, available >= -overdraft_limit, balance <= max_balance, closed is empty',
        'breach',
        sql<{ example: string }>`
      select format('%s (%s): balance %s held %s, overdraft_limit %s, max_balance %s', account, status, balance, held,
                    overdraft_limit, coalesce(max_balance::text, 'none')) as example
      from billing.accounts
      where held < 0 or overdraft_limit < 0 or balance - held < -overdraft_limit or balance > max_balance
         or (status = 'closed' and (balance <> 0 or held <> 0))`,
      );

      await check(
        'journal within limits: each entry within the overdraft and ceiling it was written under',
        'breach',
        sql<{ example: string }>`
      select format('entry %s of %s: balance %s held %s, overdraft_limit %s, max_balance %s', id, account,
                    balance_after, held_after, overdraft_limit, coalesce(max_balance::text, 'none')) as example
      from billing.entries
      where held_after < 0 or overdraft_limit < 0 or balance_after - held_after < -overdraft_limit
         or balance_after > max_balance`,
      );

      await check(
        'active holds add up to held',
        'breach',
        sql<{ example: string }>`
      select format('%s: held %s, active holds %s', a.account, a.held, coalesce(h.total, 0)) as example
      from billing.accounts as a
      left join (select account, sum(amount) as total from billing.holds where status = 'active' group by account) as h
        using (account)
      where coalesce(h.total, 0) <> a.held`,
      );

      await check(
        'every applied command that moved money has entries, every rejected one none',
        'breach',
        sql<{ example: string }>`
      select format('%s (%s %s)', o.id, o.type, o.status) as example
      from billing.operations as o
      where (o.status = 'applied' and o.type <> all(${typesThatMoveNoMoney}::text[])
             and not exists (select 1 from billing.entries as e where e.operation_id = o.id))
         or (o.status = 'rejected' and exists (select 1 from billing.entries as e where e.operation_id = o.id))`,
      );

      // A single move's reversal puts back the size of its moves; a transaction's reversal is 1 of 1.
      await check(
        'what reversals put back of each command is its running total',
        'breach',
        sql<{ example: string }>`
      select format('%s: reversal_totals says %s, its applied reversals put back %s', coalesce(t.operation_id, r.of),
                    coalesce(t.reversed, 0), coalesce(r.back, 0)) as example
      from billing.reversal_totals as t
      full join (
        select rv.reverses as of,
               sum(case when o.type = 'transaction' then 1
                        else (select max(abs(e.balance_delta)) from billing.entries as e where e.operation_id = rv.id) end) as back
        from billing.operations as rv
        join billing.operations as o on o.id = rv.reverses
        where rv.type = 'reverse' and rv.status = 'applied'
        group by rv.reverses) as r on r.of = t.operation_id
      where coalesce(t.reversed, 0) <> coalesce(r.back, 0)`,
      );

      await check(
        'every journal entry names an account and an operation that exist',
        'breach',
        sql<{ example: string }>`
      select format('entry %s: account %s%s, operation %s%s', e.id, e.account,
                    case when a.account is null then ' (missing)' else '' end, e.operation_id,
                    case when o.id is null then ' (missing)' else '' end) as example
      from billing.entries as e
      left join billing.accounts as a on a.account = e.account
      left join billing.operations as o on o.id = e.operation_id
      where a.account is null or o.id is null`,
      );

      await check(
        'guarding constraints are in place and validated',
        'breach',
        sql<{ example: string }>`
      select expected.name as example
      from (values ('accounts', 'held_not_negative'), ('accounts', 'available_within_overdraft'),
                   ('accounts', 'balance_within_max'), ('accounts', 'closed_is_empty'),
                   ('accounts', 'overdraft_limit_not_negative'),
                   ('entries', 'entry_within_limits'), ('operations', 'operations_pkey'),
                   ('operations', 'operations_seq_key'),
                   ('reversal_totals', 'reversed_within_total')) as expected(tbl, name)
      where not exists (
        select 1 from pg_constraint as c
        where c.conrelid = format('billing.%I', expected.tbl)::regclass and c.conname = expected.name and c.convalidated)
      union all
      select format('trigger %s on billing.%s', expected.name, expected.tbl) as example
      from (values ('entries', 'entries_references_exist'), ('accounts', 'accounts_stay'),
                   ('operations', 'operations_stay')) as expected(tbl, name)
      where not exists (
        select 1 from pg_trigger as g
        where g.tgrelid = format('billing.%I', expected.tbl)::regclass and g.tgname = expected.name and g.tgenabled <> 'D')`,
      );

      // Money held past its time is stuck money (docs/guarantees.md: an expired hold is released within 5 seconds).
      await check(
        'no active hold more than 5 s past its expiry',
        'breach',
        sql<{ example: string }>`
      select format('hold %s of %s: %s held, expired %s ago', hold, account, amount, date_trunc('second', now() - expires_at)) as example
      from billing.holds where status = 'active' and expires_at < now() - interval '5 seconds'
      order by expires_at`,
      );

      await check(
        'no expiry job failing or failed',
        'breach',
        sql<{ example: string }>`
      select format('job %s %s: attempt %s of %s: %s', id, task_identifier, attempts, max_attempts, left(coalesce(last_error, ''), 80)) as example
      from graphile_worker.jobs
      where task_identifier = ${holdExpiry.task} and (last_error is not null or attempts >= max_attempts)`,
      );

      await check(
        'billing jobs that failed for good',
        'warning',
        sql<{ example: string }>`
      select format('job %s %s: %s', id, task_identifier, left(coalesce(last_error, ''), 80)) as example
      from graphile_worker.jobs
      where task_identifier like ${`${taskPrefix}%`} and attempts >= max_attempts and locked_at is null`,
      );

      await check(
        'jobs waiting under an unknown billing/ task name',
        'warning',
        sql<{ example: string }>`
      select format('job %s %s', id, task_identifier) as example
      from graphile_worker.jobs
      where task_identifier like ${`${taskPrefix}%`} and task_identifier <> all(${taskNames}::text[])`,
      );

      const { rows } = await sql<{ accounts: bigint; entries: bigint; operations: bigint }>`
      select (select count(*) from billing.accounts) as accounts,
             (select count(*) from billing.entries) as entries,
             (select count(*) from billing.operations) as operations`.execute(trx);
      const counts = rows[0]!;
      return {
        ok: checks.every((c) => c.severity === 'warning' || c.violations === 0),
        accounts: Number(counts.accounts),
        entries: Number(counts.entries),
        operations: Number(counts.operations),
        checks,
      };
    });
}
