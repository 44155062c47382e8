-- Up Migration
-- The DBA's view: a time on every journal entry, one account's history (applied and rejected
-- commands) through indexes and paginated by seq, a reconciliation view that lists only
-- mismatches, and a comment on every table and column for \d+.

-- Entries get the time of the transaction that wrote them (the same now() as their operation's
-- created_at). Entries written before this migration take their operation's time.
alter table billing.entries add column created_at timestamptz not null default now();
update billing.entries as e set created_at = o.created_at from billing.operations as o where o.id = e.operation_id;

-- One account's history is every operation whose request names it: `account` (open_account,
-- credit, debit, hold), `from` and `to` (transfer; capture's `to`), or a hold of the account
-- (capture, release, expire name the hold only). Derived from what every writer already stores
-- (the request as received), so it needs no table of its own nor a change to how results are
-- written. Each index is (name, seq): a page is a few index range scans, whatever the table size.
-- The request is JSON text kept as sent (sql/0006), and a \u0000 or a lone surrogate anywhere in
-- it (metadata may hold them; a key may too) makes ->> fail: such a row could then never be written. The fields
-- are read through billing.request_field, which reads them from a copy where those escapes are
-- U+FFFD (same shape, so the text stays valid JSON). Account and hold ids cannot hold either.
create function billing.request_field(request json, field text)
returns text
language sql
immutable
parallel safe
as $$
  select case when strpos(request::text, '\u') = 0 then request->>field
              else regexp_replace(request::text, '\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})', '\\ufffd', 'g')::json->>field
         end
$$;
comment on function billing.request_field(json, text) is 'A top-level field of a stored request as text; never fails on \u0000 or lone surrogates.';

create index operations_request_account on billing.operations ((billing.request_field(request, 'account')), seq)
  where billing.request_field(request, 'account') is not null;
create index operations_request_from on billing.operations ((billing.request_field(request, 'from')), seq)
  where billing.request_field(request, 'from') is not null;
create index operations_request_to on billing.operations ((billing.request_field(request, 'to')), seq)
  where billing.request_field(request, 'to') is not null;
create index operations_request_hold on billing.operations ((billing.request_field(request, 'hold')), seq)
  where type in ('capture', 'release', 'expire');
create index holds_account on billing.holds (account);

create function billing.account_history(account_id text, after_seq bigint default 0, page_size integer default 100)
returns setof billing.operations
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
  select o.*
  from billing.operations as o
  where o.seq in (
    select found.seq from (
      (select seq from billing.operations
       where billing.request_field(request, 'account') = account_id
         and billing.request_field(request, 'account') is not null and seq > after_seq
       order by seq limit page_size)
      union
      (select seq from billing.operations
       where billing.request_field(request, 'from') = account_id
         and billing.request_field(request, 'from') is not null and seq > after_seq
       order by seq limit page_size)
      union
      (select seq from billing.operations
       where billing.request_field(request, 'to') = account_id
         and billing.request_field(request, 'to') is not null and seq > after_seq
       order by seq limit page_size)
      union
      (select by_hold.seq
       from billing.holds as h
       cross join lateral (
         select seq from billing.operations
         where billing.request_field(request, 'hold') = h.hold and type in ('capture', 'release', 'expire') and seq > after_seq
         order by seq limit page_size) as by_hold
       where h.account = account_id)
    ) as found
    order by found.seq
    limit page_size)
  order by o.seq
$$;

comment on function billing.account_history(text, bigint, integer) is
  'billing.account_history(account_id, after_seq default 0, page_size default 100): the results (billing.operations rows, '
  'applied or rejected) of the commands that named this account or one of its holds, in seq order, those with seq > after_seq, '
  'at most page_size. Next page: after_seq => the last seq returned.';

-- Accounts whose row disagrees with the sum of their journal entries. Empty when the ledger is right.
create view billing.reconciliation_mismatches as
select a.account,
       a.balance,
       coalesce(e.balance_sum, 0) as entries_balance,
       a.held,
       coalesce(e.held_sum, 0) as entries_held
from billing.accounts as a
left join (
  select account, sum(balance_delta) as balance_sum, sum(held_delta) as held_sum
  from billing.entries group by account
) as e using (account)
where a.balance <> coalesce(e.balance_sum, 0) or a.held <> coalesce(e.held_sum, 0);

comment on view billing.reconciliation_mismatches is
  'Accounts whose balance or held differs from the sum of their journal entries: should be empty (billing verify checks more).';
comment on column billing.reconciliation_mismatches.account is 'The account id.';
comment on column billing.reconciliation_mismatches.balance is 'billing.accounts.balance.';
comment on column billing.reconciliation_mismatches.entries_balance is 'sum(balance_delta) of the account''s entries (0 without entries).';
comment on column billing.reconciliation_mismatches.held is 'billing.accounts.held.';
comment on column billing.reconciliation_mismatches.entries_held is 'sum(held_delta) of the account''s entries (0 without entries).';

do $grants$
declare
  owner_role  text := coalesce(nullif(current_setting('pgbilling.owner_role', true), ''), 'billing_owner');
  reader_role text := coalesce(nullif(current_setting('pgbilling.reader_role', true), ''), 'billing_reader');
begin
  -- Owned by the owner role like the rest of the schema (0004): the SECURITY DEFINER function
  -- then carries no superuser power when a superuser migrates.
  if pg_catalog.pg_has_role(current_user, owner_role, 'MEMBER') then
    execute format('alter function billing.account_history(text, bigint, integer) owner to %I', owner_role);
    execute format('alter view billing.reconciliation_mismatches owner to %I', owner_role);
  end if;
  execute format('grant select on billing.reconciliation_mismatches to %I', reader_role);
end
$grants$;

comment on table billing.accounts is 'One row per account: what it owns (balance), what active holds reserve (held), and available = balance - held. Only workers change it.';
comment on column billing.accounts.account is 'Account id: 1 to 64 characters of A-Z a-z 0-9 _ . : @ -.';
comment on column billing.accounts.currency is 'Three capital letters, set when the account is opened.';
comment on column billing.accounts.balance is 'What the account owns, in minor units (cents).';
comment on column billing.accounts.held is 'The sum of the remaining amounts of its active holds; never negative.';
comment on column billing.accounts.available is 'balance - held (generated); never negative: debit, transfer and hold need available >= amount.';
comment on column billing.accounts.created_at is 'When the open_account command was applied.';
comment on column billing.accounts.updated_at is 'When a command last changed balance or held.';

comment on table billing.operations is 'One result per command id, applied or rejected. Read new results with: where seq > $cursor order by seq.';
comment on column billing.operations.id is 'The command id (idempotency key), or job:<job id>, expire:<hold id> for ids the service makes.';
comment on column billing.operations.seq is 'The results cursor: seq order is commit order, so where seq > $cursor never skips a committed result.';
comment on column billing.operations.type is 'open_account, credit, debit, transfer, hold, capture, release, or expire (the service''s own hold expiry).';
comment on column billing.operations.status is 'applied or rejected.';
comment on column billing.operations.code is 'ok when applied, else the rejection code (insufficient_funds, account_not_found, invalid_command, ...).';
comment on column billing.operations.message is 'A sentence explaining a rejection (for invalid_command it starts with the field name); null when applied.';
comment on column billing.operations.request is 'The payload as received: JSON text kept verbatim, numbers digit for digit.';
comment on column billing.operations.fingerprint is 'sha-256 of the command type and its canonical payload: the same command again is a replay, another one under this id an id conflict.';
comment on column billing.operations.job_id is 'The graphile-worker job that produced this result (null for results written outside a job).';
comment on column billing.operations.balances is 'What the command left on each account it touched: [{account, balance, held}], money as strings.';
comment on column billing.operations.created_at is 'When the transaction that wrote the result started.';

comment on table billing.holds is 'Money reserved on an account until captured, released or expired.';
comment on column billing.holds.hold is 'Hold id (the hold command''s id unless it named one).';
comment on column billing.holds.account is 'The account whose money is held.';
comment on column billing.holds.amount is 'The amount reserved when the hold was made.';
comment on column billing.holds.status is 'active, captured, released or expired.';
comment on column billing.holds.captured is 'How much a capture took (0 unless captured); the rest went back to available.';
comment on column billing.holds.captured_to is 'The account a capture moved the money to; null when it was taken off the balance or not captured.';
comment on column billing.holds.expires_at is 'When the service releases the hold by itself (expires_at or ttl_seconds of the hold command); null: never.';
comment on column billing.holds.operation_id is 'The hold command that created it.';
comment on column billing.holds.closed_by is 'The capture, release or expire command that closed it; null while active.';
comment on column billing.holds.created_at is 'When the hold was created.';
comment on column billing.holds.closed_at is 'When it was captured, released or expired; null while active.';

comment on table billing.entries is 'Journal: one row per change of one account. Per account, entries in id order chain from zero to the account row.';
comment on column billing.entries.id is 'Increases per account in the order changes were applied.';
comment on column billing.entries.operation_id is 'The command (billing.operations.id) that made the change.';
comment on column billing.entries.account is 'The account changed.';
comment on column billing.entries.balance_delta is 'Change of balance.';
comment on column billing.entries.held_delta is 'Change of held.';
comment on column billing.entries.balance_after is 'The account''s balance after this change.';
comment on column billing.entries.held_after is 'The account''s held after this change.';
comment on column billing.entries.created_at is 'When the transaction that made the change started (its operation''s created_at).';

comment on table billing.id_conflicts is 'Command ids reused with another payload: the first result stays as it was; each reuse is kept here.';
comment on column billing.id_conflicts.conflict_id is 'Row id.';
comment on column billing.id_conflicts.id is 'The reused command id (its result is in billing.operations).';
comment on column billing.id_conflicts.type is 'The command type of the reuse.';
comment on column billing.id_conflicts.request is 'The payload of the reuse, as received.';
comment on column billing.id_conflicts.job_id is 'The graphile-worker job of the reuse.';
comment on column billing.id_conflicts.created_at is 'When the reuse was seen.';

comment on table billing.worker_liveness is 'The graphile-worker ids of live workers, each with the session that registered it: an id whose session is gone from pg_stat_activity belongs to a dead worker, and its jobs are handed back.';
comment on column billing.worker_liveness.id is 'A graphile-worker locked_by value (pool-... or worker-...).';
comment on column billing.worker_liveness.backend_start is 'The registering session''s backend_start: with backend_pid, names a session no other login can fake.';
comment on column billing.worker_liveness.backend_pid is 'The registering session''s backend pid (see pg_stat_activity).';
comment on column billing.worker_liveness.os_pid is 'The worker''s operating-system process id.';
comment on column billing.worker_liveness.host is 'The worker''s host name.';
comment on column billing.worker_liveness.registered_at is 'When the id was registered.';

comment on column billing.lock_slots.slot is 'A slot number: a key (id:, account:, hold:) is folded into one by src/ledger/lock-slots.ts.';
comment on column billing.result_seq_lock.only_row is 'Always true: the table has this one row.';

-- Down Migration
drop view billing.reconciliation_mismatches;
drop function billing.account_history(text, bigint, integer);
drop index billing.holds_account;
drop index billing.operations_request_hold;
drop index billing.operations_request_to;
drop index billing.operations_request_from;
drop index billing.operations_request_account;
drop function billing.request_field(json, text);
alter table billing.entries drop column created_at;
