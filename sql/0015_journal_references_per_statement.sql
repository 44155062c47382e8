-- Up Migration
-- The journal's references (an entry's account and operation exist), checked once per statement
-- instead of twice per row. The two foreign keys ran a lookup and a FOR KEY SHARE lock per entry,
-- 400 of each for a batch of 200 transfers, all while the batch held its slot locks: 18% of the
-- ledger's CPU and 12% of the throughput (docs/performance.md). The same rule, set-based:
-- - every statement that inserts entries ends with one index scan over the distinct accounts and
--   one over the distinct operations of the rows it inserted; an entry whose account or operation
--   is missing fails the statement (23503, as the foreign key did). The
--   operation may be inserted by the same statement (the worker writes a batch in one statement),
--   as the deferred foreign key allowed it to be inserted later in the transaction;
-- - what the foreign keys' locks kept (a referenced row deleted or renamed under a new entry) is
--   kept for good: an account or a result row is never deleted and its id never changes. No role
--   but the owner may delete them anyway (sql/0009_narrow_roles.sql).
alter table billing.entries
  drop constraint entries_account_fkey,
  drop constraint entries_operation_id_fkey;

create function billing.check_entry_references()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  entry_accounts text[] := array(select distinct account from new_entries);
  entry_operations text[] := array(select distinct operation_id from new_entries);
  missing text;
begin
  -- Each list is one index scan over its keys (= any(array)): a correlated NOT EXISTS was planned
  -- as a hashed subplan, a hash of the whole operations table built for every statement.
  if (select count(*) from billing.accounts where account = any(entry_accounts)) = cardinality(entry_accounts)
     and (select count(*) from billing.operations where id = any(entry_operations)) = cardinality(entry_operations) then
    return null;
  end if;
  -- Only on a breach: name the first missing reference.
  select format('journal entry for %s %s, which does not exist', m.kind, m.key) into missing
    from (select 'account', a.key from unnest(entry_accounts) as a(key)
           where not exists (select from billing.accounts as x where x.account = a.key)
          union all
          select 'operation', o.key from unnest(entry_operations) as o(key)
           where not exists (select from billing.operations as x where x.id = o.key)) as m(kind, key)
   limit 1;
  raise exception using errcode = 'foreign_key_violation', message = missing;
end;
$$;

create trigger entries_references_exist
  after insert on billing.entries
  referencing new table as new_entries
  for each statement execute function billing.check_entry_references();

create function billing.refuse_journal_target_change()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  raise exception using
    errcode = 'restrict_violation',
    message = format('billing.%s rows are never deleted and their ids never change: the journal refers to them', tg_table_name);
end;
$$;

create trigger accounts_stay
  before delete or update of account on billing.accounts
  for each row execute function billing.refuse_journal_target_change();

create trigger operations_stay
  before delete or update of id on billing.operations
  for each row execute function billing.refuse_journal_target_change();

comment on function billing.check_entry_references() is 'Fails a statement that inserted a journal entry whose account or operation does not exist.';
comment on function billing.refuse_journal_target_change() is 'Accounts and results are never deleted nor renamed: journal entries refer to them.';

-- Down Migration
drop trigger operations_stay on billing.operations;
drop trigger accounts_stay on billing.accounts;
drop function billing.refuse_journal_target_change();
drop trigger entries_references_exist on billing.entries;
drop function billing.check_entry_references();
alter table billing.entries
  add constraint entries_account_fkey foreign key (account) references billing.accounts (account),
  add constraint entries_operation_id_fkey foreign key (operation_id) references billing.operations (id)
    deferrable initially deferred;
