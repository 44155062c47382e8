-- Up Migration
-- Locks that only the worker can take. Advisory locks were the ledger's locks until now, but any
-- login may take any advisory lock (no privilege is checked), so a client or reader session could
-- stall every command. A row lock (SELECT ... FOR UPDATE) needs UPDATE privilege on the table, and
-- only the worker role gets it here; LOCK TABLE in any mode that conflicts with a row lock needs
-- UPDATE, DELETE or TRUNCATE too. So no client or reader session can block these rows.

-- Lock slots: a batch folds every key it must serialize on (`id:<command id>`, `account:<id>` for
-- each account a command names, `hold:<id>` for each hold it names) into a slot number and locks
-- those rows in slot order, in one statement, before it reads anything that decides. A row that
-- does not exist yet cannot be locked; its slot can, so a command that finds an account or hold
-- missing waits for (and then sees) the transaction creating it. Two keys sharing a slot only wait
-- for each other. The slot function lives in src/ledger/lock-slots.ts (slotCount must match).
create table billing.lock_slots (
  slot int4 primary key
    constraint slot_in_range check (slot between 0 and 65535)
);
insert into billing.lock_slots (slot) select generate_series(0, 65535);

-- One row, locked right before a batch inserts its result rows and held to commit: seqs are handed
-- out in commit order, so `where seq > $cursor` never skips a row, and a batch that waited for
-- another's locks gets a higher seq than it (seq order is a serial order).
create table billing.result_seq_lock (
  only_row boolean primary key default true
    constraint one_row check (only_row)
);
insert into billing.result_seq_lock default values;

comment on table billing.lock_slots is 'Row locks of the ledger (FOR UPDATE by the worker only): one row per key slot.';
comment on table billing.result_seq_lock is 'Locked (FOR UPDATE by the worker only) from a batch''s result insert to its commit.';

-- 0004's default privileges gave the worker SELECT, INSERT, UPDATE and the reader SELECT on new
-- tables. The worker needs SELECT and UPDATE (the privilege FOR UPDATE asks for) and nothing else.
-- Reading these rows blocks nobody, so the reader keeps SELECT; the client has nothing here.
do $grants$
declare
  worker_role text := coalesce(nullif(current_setting('pgbilling.worker_role', true), ''), 'billing_worker');
  client_role text := coalesce(nullif(current_setting('pgbilling.client_role', true), ''), 'billing_client');
  owner_role  text := coalesce(nullif(current_setting('pgbilling.owner_role', true), ''), 'billing_owner');
begin
  if pg_catalog.pg_has_role(current_user, owner_role, 'MEMBER') then
    execute format('alter table billing.lock_slots owner to %I', owner_role);
    execute format('alter table billing.result_seq_lock owner to %I', owner_role);
  end if;
  execute format('revoke all on billing.lock_slots, billing.result_seq_lock from %I, %I', worker_role, client_role);
  execute format('grant select, update on billing.lock_slots, billing.result_seq_lock to %I', worker_role);
end
$grants$;

-- Down Migration
drop table billing.result_seq_lock;
drop table billing.lock_slots;
