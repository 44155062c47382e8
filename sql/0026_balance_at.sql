-- Up Migration
-- Balance at a point: billing.balance_at(account, after_seq bigint) and billing.balance_at(account,
-- at timestamptz), the balance, held and available that the results in seq order left, read from
-- the journal.
--
-- What "at a time" means. seq order is the serial order (and the commit order: a batch takes its
-- seqs under the row lock of billing.result_seq_lock, held to commit). created_at is when a
-- result's transaction started, which is not monotonic in seq: a batch that started first may
-- take its seq after another one. "Every result whose created_at <= t" can therefore be a set
-- that skips a result in the middle of seq order, a state that never existed (money that left one
-- account and never arrived). So a time is turned into a seq, and the state is the one after
-- every result up to that seq: a state that existed, the same cut for every account.
-- The cut is read from a time taken for this: sequenced_at, the database clock when the result
-- row is inserted, which is after its batch took the seq lock and before it commits. The next
-- batch takes the lock only after this one committed, so sequenced_at never decreases in seq
-- order, and "at t" is: after every result with sequenced_at <= t. That contains every result
-- committed by t, and besides them at most the one batch that held the seq lock at t (it had
-- taken its seqs and was committing); nothing that took its seq after t.
-- Results written before this migration get the latest created_at up to them in seq order: each
-- took its seq after every earlier result's transaction had started, so this is a lower bound of
-- when it did, and never decreases. For them "at t" is "after the longest run of results, in seq
-- order, that all started by t".
alter table billing.operations add column sequenced_at timestamptz;
update billing.operations as o set sequenced_at = r.started_by
from (select seq, max(created_at) over (order by seq) as started_by from billing.operations) as r
where r.seq = o.seq;
-- Evaluated per row in the result insert, which runs once the batch holds the seq lock (its rows
-- are gated on it, src/ledger/batch-sql.ts), like the seq itself.
alter table billing.operations
  alter column sequenced_at set default clock_timestamp(),
  alter column sequenced_at set not null;

comment on column billing.operations.sequenced_at is
  'When the result took its seq: the database clock under the seq lock, right before its transaction committed. '
  'Never decreases in seq order (as long as the server clock does not go back); billing.balance_at(account, at) '
  'turns a time into the last seq taken by then.';

-- An account's entries in id order are in seq order: its row is locked from a change until commit,
-- and a batch writes its entries and its results in the order it planned them. So "the account's
-- last entry whose result is at or before a seq" is a bisection over entry ids, each step one probe
-- of entries_account_id and one of the operations key: about 2 x log2(entry id range) index probes,
-- whatever the size of the journal or of the account's history. Each probe names its range as
-- (account, id) row comparisons, not account = $1: with an equality the planner may take
-- entries_pkey in id order and filter on the account (it did for an account with half the
-- entries), a walk as long as the gap to the account's next entry. Only entries_account_id can
-- serve a range over (account, id).
create function billing.balance_at(account_id text, after_seq bigint)
returns table (account text, currency text, balance bigint, held bigint, available bigint, seq bigint)
language plpgsql
stable
strict
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  max_id constant bigint := 9223372036854775807;
  account_currency text;
  through bigint;
  lo bigint;
  hi bigint;
  mid bigint;
  probe_id bigint;
  probe_seq bigint;
  entry_balance bigint;
  entry_held bigint;
  opened boolean;
begin
  select a.currency into account_currency from billing.accounts as a where a.account = account_id;
  if not found then
    return;
  end if;
  -- A seq past the newest result means the newest: the state now, which later results may extend.
  through := least(after_seq, coalesce((select max(o.seq) from billing.operations as o), 0));

  select e.id, o.seq into lo, probe_seq
  from billing.entries as e join billing.operations as o on o.id = e.operation_id
  where (e.account, e.id) >= (account_id, 0) and (e.account, e.id) <= (account_id, max_id)
  order by e.account, e.id limit 1;
  if not found or probe_seq > through then
    -- No change by the cut: the account had balance 0 if it was open by then, else it did not exist.
    -- Its results in seq order (operations_request_account, a range as above, one at a time: a
    -- query that filters on the type is planned as "read them all") up to its applied
    -- open_account; before that come only rejections that named it before it existed.
    probe_seq := 0;
    loop
      select o.seq, o.type = 'open_account' and o.status = 'applied' into probe_seq, opened
      from billing.operations as o
      where (billing.request_field(o.request, 'account'), o.seq) > (account_id, probe_seq)
        and (billing.request_field(o.request, 'account'), o.seq) <= (account_id, through)
        and billing.request_field(o.request, 'account') is not null
      order by billing.request_field(o.request, 'account'), o.seq limit 1;
      exit when not found;
      if opened then
        return query select account_id, account_currency, 0::bigint, 0::bigint, 0::bigint, through;
        return;
      end if;
    end loop;
    return;
  end if;

  -- lo: an entry at or before the cut; every entry with an id above hi is after it.
  select e.id, o.seq into hi, probe_seq
  from billing.entries as e join billing.operations as o on o.id = e.operation_id
  where (e.account, e.id) >= (account_id, 0) and (e.account, e.id) <= (account_id, max_id)
  order by e.account desc, e.id desc limit 1;
  if probe_seq <= through then
    lo := hi;
  else
    hi := hi - 1;
    while lo < hi loop
      mid := lo + (hi - lo + 1) / 2;
      select e.id, o.seq into probe_id, probe_seq
      from billing.entries as e join billing.operations as o on o.id = e.operation_id
      where (e.account, e.id) >= (account_id, mid) and (e.account, e.id) <= (account_id, hi)
      order by e.account, e.id limit 1;
      if found and probe_seq <= through then
        lo := probe_id;
      else
        hi := mid - 1;
      end if;
    end loop;
  end if;

  select e.balance_after, e.held_after into entry_balance, entry_held from billing.entries as e where e.id = lo;
  return query select account_id, account_currency, entry_balance, entry_held, entry_balance - entry_held, through;
end;
$$;

-- A time becomes the last seq taken by then (sequenced_at never decreases in seq order): a
-- bisection over seq on the operations_seq_key index, each step one probe.
create function billing.balance_at(account_id text, at timestamptz)
returns table (account text, currency text, balance bigint, held bigint, available bigint, seq bigint)
language plpgsql
stable
strict
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  lo bigint;
  hi bigint;
  mid bigint;
  probe_seq bigint;
  probe_at timestamptz;
begin
  if not exists (select from billing.accounts as a where a.account = account_id) then
    return;
  end if;
  select o.seq, o.sequenced_at into lo, probe_at from billing.operations as o order by o.seq limit 1;
  if not found or probe_at > at then
    -- Before the first result: no account existed yet.
    return;
  end if;
  -- lo: a result sequenced by `at`; every result with a seq above hi was sequenced after it.
  select o.seq, o.sequenced_at into hi, probe_at from billing.operations as o order by o.seq desc limit 1;
  if probe_at <= at then
    lo := hi;
  else
    hi := hi - 1;
    while lo < hi loop
      mid := lo + (hi - lo + 1) / 2;
      select o.seq, o.sequenced_at into probe_seq, probe_at
      from billing.operations as o where o.seq >= mid order by o.seq limit 1;
      if probe_seq <= hi and probe_at <= at then
        lo := probe_seq;
      else
        hi := mid - 1;
      end if;
    end loop;
  end if;
  return query select * from billing.balance_at(account_id, lo);
end;
$$;

comment on function billing.balance_at(text, bigint) is
  'billing.balance_at(account_id, after_seq): the account''s balance, held and available (balance - held; negative '
  'where an overdraft allows it) after every result with seq <= after_seq, in seq order, read from the journal; '
  'seq is the last seq that state is after (the newest one when after_seq is past it: then later results may still '
  'change the answer, which for a seq already read never changes). No row when the account was not open by then '
  '(or never was). Call with named arguments (after_seq => 12) or a bigint: an untyped literal matches both forms.';
comment on function billing.balance_at(text, timestamp with time zone) is
  'billing.balance_at(account_id, at): billing.balance_at(account_id, after_seq => s) where s is the last result '
  'sequenced by at (billing.operations.sequenced_at <= at): every result committed by at, and none that took its seq '
  'after at; a state that existed, the same cut for every account. The answer for a time is final once a result '
  'sequenced after it exists (a batch commits milliseconds after it takes its seqs). No row when the account was not '
  'open by then. Call with at => ''2026-12-07 12:00:00+00'' or a timestamptz: an untyped literal matches both forms.';

do $grants$
declare
  owner_role  text := coalesce(nullif(current_setting('pgbilling.owner_role', true), ''), 'billing_owner');
  client_role text := coalesce(nullif(current_setting('pgbilling.client_role', true), ''), 'billing_client');
  reader_role text := coalesce(nullif(current_setting('pgbilling.reader_role', true), ''), 'billing_reader');
begin
  -- As billing.account_history since 0019: PUBLIC runs nothing of ours, the client and the reader
  -- do. SECURITY DEFINER because the client may not read the journal itself: it learns one
  -- account's balances, as billing.accounts already shows it the current ones.
  execute 'revoke execute on function billing.balance_at(text, bigint), billing.balance_at(text, timestamptz) from public';
  execute format('grant execute on function billing.balance_at(text, bigint), billing.balance_at(text, timestamptz) to %I, %I',
                 client_role, reader_role);
  -- Owned by the owner role (0011): the SECURITY DEFINER functions then carry no superuser power
  -- when a superuser migrates.
  if pg_catalog.pg_has_role(current_user, owner_role, 'MEMBER') then
    execute format('alter function billing.balance_at(text, bigint) owner to %I', owner_role);
    execute format('alter function billing.balance_at(text, timestamptz) owner to %I', owner_role);
  end if;
end
$grants$;

-- Down Migration
drop function billing.balance_at(text, timestamptz);
drop function billing.balance_at(text, bigint);
alter table billing.operations drop column sequenced_at;
