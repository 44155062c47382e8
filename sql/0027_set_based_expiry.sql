-- Up Migration
-- Hold expiry as one set-based call, for the workers' expiry sweeper (src/worker/expiry-sweeper.ts).
-- Through the batch path (src/ledger/apply.ts) each expiry cost what a command costs and its slot
-- locks queued behind ordinary batches: 20,000 holds due at one instant behind a backlog came up to
-- 7 s late, 40,000 up to 15 s. Here the rule of src/commands/expire_hold.ts (an active hold past
-- due: held -= amount, status expired, a result `expire:<hold>`) is applied to many holds in a few
-- statements, keeping what the batch path guarantees:
-- - Lock order: a share row (below; SKIP LOCKED, never waited for), the holds (SKIP LOCKED: a hold
--   an ordinary batch has locked is left for a later call, so the call never waits on a hold), then
--   their accounts in the ledger's order (`order by account`, as every batch locks them), then the
--   result seq row. Holds -> accounts -> seq row is a suffix of the batch's order (slot locks ->
--   holds -> accounts -> seq row), and nothing waits for a share row: no wait can close a cycle.
-- - Serial order: every row the decision reads is locked before the statement that reads it (READ
--   COMMITTED: a statement's snapshot comes after the locks it waited for), and the seq row is
--   locked after every ledger write and held to commit: a batch that touched one of these holds or
--   accounts before has a lower seq, one after has a higher seq. A capture or release that found a
--   hold past due was refused (hold_closed) on either side.
-- - Decided at now(), the call's transaction start and each result's created_at: a hold falling
--   due later is left for the next call.
-- - Within a call, expiries apply in hold order: seqs, journal entries (ids increasing per account,
--   each with the held it left) and each result's balances follow it.
-- - The same id, request and fingerprint as the `billing/expire_hold` job (src/commands/parse.ts
--   fingerprintOf: sha-256 of "expire", a newline and the canonical JSON of {"hold": ...}), so a
--   job that runs afterwards is a replay with no effect. test/expiry-sweeper.test.ts checks they agree.
-- - One `billing_results` notification per call (highest seq and count), unless the NOTIFY queue
--   is used beyond notify_queue_limit (as a batch decides: results commit whatever the queue holds).
-- - The holds' expiry jobs that no worker has fetched are deleted in the same transaction (SKIP
--   LOCKED: a fetched job runs, and is a replay).

-- Shares of the accounts, by a hash of the account id: a call claims one share (its row, FOR UPDATE
-- SKIP LOCKED) and expires only holds on accounts of that share, so calls running side by side
-- (several per worker, several workers) lock disjoint accounts instead of queueing on each other.
-- The hash only spreads the work (hashtext may differ between PostgreSQL versions; nothing is
-- stored by it). Only the worker role may lock these rows.
create table billing.expiry_shares (
  share int4 primary key
    constraint share_in_range check (share between 0 and 7)
);
insert into billing.expiry_shares (share) select generate_series(0, 7);
comment on table billing.expiry_shares is
  'Shares of the accounts (hashtext(account) mod the row count) that expiry sweeps claim one at a time (FOR UPDATE SKIP LOCKED by the worker only).';
comment on column billing.expiry_shares.share is
  'A share number: the accounts whose hashtext(account) & 2147483647, modulo the number of rows, is this.';

-- Returns how many holds it expired (a count, not rows: rows the client must read could hold the
-- transaction, and its locks, open while the client is stopped).
create function billing.expire_due_holds(max_holds integer, notify_queue_limit double precision)
returns integer
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
-- Every access is by key, from the call's own few rows, or by the partial index holds_active_expiry:
-- a plan must not scan a table, nor a whole index, whatever size the tables grow to (as in
-- src/ledger/apply.ts): nested loops of index lookups only.
set enable_seqscan = off
set enable_hashjoin = off
set enable_mergejoin = off
set jit = off
as $$
declare
  shares integer := (select count(*) from billing.expiry_shares);
  claimed integer;
  due text[];
  accounts_locked bigint;
  expired integer;
  highest bigint;
begin
  if max_holds is null or max_holds < 1 then
    raise exception 'billing.expire_due_holds: max_holds must be at least 1' using errcode = '22023';
  end if;
  -- The first share with a due hold that no other call has claimed.
  select s.share into claimed
  from billing.expiry_shares as s
  where exists (select from billing.holds as h
                where h.status = 'active' and h.expires_at <= now()
                  and (hashtext(h.account) & 2147483647) % shares = s.share)
  order by s.share
  limit 1
  for update of s skip locked;
  if claimed is null then
    return 0;
  end if;
  -- Oldest due first. A hold another transaction has locked (a capture or release in flight) is
  -- skipped, never waited for; one closed since this statement began fails the lock's recheck.
  select array_agg(d.hold order by d.hold) into due
  from (select h.hold from billing.holds as h
        where h.status = 'active' and h.expires_at <= now()
          and (hashtext(h.account) & 2147483647) % shares = claimed
        order by h.expires_at
        limit max_holds
        for update skip locked) as d;
  if due is null then
    return 0;
  end if;

  select count(*) into accounts_locked
  from (select a.account from billing.accounts as a
        where a.account = any(array(select distinct h.account from billing.holds as h where h.hold = any(due)))
        order by a.account
        for update) as locked;

  -- One statement of data-modifying CTEs (sibling CTEs run in no defined order and share one
  -- snapshot, taken after the locks above): the seq row is locked once the other writes are done
  -- (its condition reads their row counts), and the results, which take their seqs, come after it.
  with locked as (
    select h.hold, h.account, h.amount, a.balance, a.overdraft_limit, a.max_balance,
           row_number() over (order by h.hold) as n,
           a.held - sum(h.amount) over (partition by h.account order by h.hold rows unbounded preceding) as held_after,
           '{"hold":' || to_json(h.hold)::text || '}' as request
    -- Each row by its key: a LATERAL subquery kept apart by its LIMIT (keys: one row at most) is
    -- an index lookup per hold, whatever the statistics say. As a plain join, with statistics
    -- from before a burst of holds, it was planned as a scan of every active hold per due hold.
    from unnest(due) as d(hold)
    cross join lateral (select h.hold, h.account, h.amount from billing.holds as h
                        where h.hold = d.hold and h.status = 'active' limit 1) as h
    cross join lateral (select a.balance, a.held, a.overdraft_limit, a.max_balance from billing.accounts as a
                        where a.account = h.account limit 1) as a
  ),
  -- Each result row computed before the seq lock: under it, only the insert itself.
  expiring as (
    select l.*, 'expire:' || l.hold as id,
           encode(sha256(convert_to('expire' || chr(10) || l.request, 'UTF8')), 'hex') as fingerprint,
           jsonb_build_array(jsonb_build_object(
             'account', l.account, 'balance', l.balance::text, 'held', l.held_after::text)) as balances
    from locked as l
  ),
  closed as (
    update billing.holds as h
    set status = 'expired', closed_by = 'expire:' || h.hold, closed_at = clock_timestamp()
    where h.hold = any(due)
    returning h.hold
  ),
  rebalanced as (
    update billing.accounts as a
    set held = a.held - t.released, updated_at = now()
    from (select e.account, sum(e.amount) as released from expiring as e group by e.account) as t
    where a.account = t.account
    returning a.account
  ),
  new_entries as (
    -- Each entry carries the limits it was written under (0024), as the batch's entries do.
    insert into billing.entries (operation_id, account, balance_delta, held_delta, balance_after, held_after,
                                 overdraft_limit, max_balance)
    select e.id, e.account, 0, -e.amount, e.balance, e.held_after, e.overdraft_limit, e.max_balance
    from expiring as e
    order by e.n
    returning id
  ),
  needless_jobs as (
    delete from graphile_worker._private_jobs as j
    where j.id in (select k.id from graphile_worker._private_jobs as k
                   where k.key = any(array(select e.id from expiring as e)) and k.locked_at is null
                   for update skip locked)
    returning j.id
  ),
  seq_locked as (
    select l.only_row from billing.result_seq_lock as l
    where (select count(*) from closed) + (select count(*) from rebalanced) + (select count(*) from new_entries)
          + (select count(*) from needless_jobs) > 0
    for update
  ),
  results as (
    insert into billing.operations (id, type, status, code, message, request, fingerprint, job_id, balances)
    select e.id, 'expire', 'applied', 'ok', null, e.request::json, e.fingerprint, null, e.balances
    from expiring as e
    where exists (select from seq_locked)
    order by e.n
    returning seq
  )
  select count(*)::integer, max(r.seq) into expired, highest from results as r;

  -- Every hold locked above was active: all of them expire, or the call fails and rolls back.
  if expired <> cardinality(due) then
    raise exception 'billing.expire_due_holds: expired % of % locked holds', expired, cardinality(due);
  end if;
  if pg_notification_queue_usage() < notify_queue_limit then
    perform pg_notify('billing_results', json_build_object('seq', highest::text, 'count', expired)::text);
  end if;
  return expired;
end;
$$;

comment on function billing.expire_due_holds(integer, double precision) is
  'The expiry sweeper''s call: claims a share of the accounts and expires up to max_holds of its active holds past due (skipping any another transaction holds), as the expire_hold job would, and deletes their unfetched jobs; returns how many it expired (0 when no share with a due hold is free).';

do $grants$
declare
  worker_role text := coalesce(nullif(current_setting('pgbilling.worker_role', true), ''), 'billing_worker');
  client_role text := coalesce(nullif(current_setting('pgbilling.client_role', true), ''), 'billing_client');
begin
  -- FOR UPDATE asks for UPDATE; nothing else is needed (as billing.lock_slots, sql/0007).
  execute format('revoke all on billing.expiry_shares from %I, %I', worker_role, client_role);
  execute format('grant select, update on billing.expiry_shares to %I', worker_role);
  execute 'revoke execute on function billing.expire_due_holds(integer, double precision) from public';
  execute format('grant execute on function billing.expire_due_holds(integer, double precision) to %I', worker_role);
end
$grants$;

-- Down Migration
drop function billing.expire_due_holds(integer, double precision);
drop table billing.expiry_shares;
