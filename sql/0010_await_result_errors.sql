-- Up Migration
-- billing.await_result, answering at once when waiting cannot work, with SQLSTATEs of its own:
--   BL001  no result within timeout_seconds (the command stays enqueued; call again to keep waiting).
--          Not 57014, which is statement_timeout's (query_canceled): a caller must be able to
--          tell "the worker has not answered yet" from "my statement was cancelled".
--   BL002  the command's job was enqueued by this same transaction: no worker can see it before
--          this transaction commits, so waiting here could only end in BL001.
--   BL003  the transaction is REPEATABLE READ or SERIALIZABLE: its snapshot never shows a result
--          that commits later.
--   22004  timeout_seconds (or command_id) is null; 22023 it is negative, NaN or infinite.
-- SECURITY DEFINER (run as the owner role): it looks in graphile-worker's job table, which a client
-- cannot read, but only for a job that the caller's own transaction inserted. Who may call it is
-- decided by USAGE on schema billing (client, worker, reader and owner roles).
create or replace function billing.await_result(command_id text, timeout_seconds double precision default 10)
returns setof billing.operations
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  deadline timestamptz;
  own_xid xid8 := pg_current_xact_id_if_assigned();
begin
  if command_id is null then
    raise exception 'billing.await_result: command_id must not be null' using errcode = '22004';
  end if;
  if timeout_seconds is null then
    raise exception 'billing.await_result: timeout_seconds must not be null (the default is 10 seconds)'
      using errcode = '22004';
  end if;
  if timeout_seconds < 0 or timeout_seconds = 'NaN' or timeout_seconds = 'Infinity' then
    raise exception 'billing.await_result: timeout_seconds must be a finite number of seconds >= 0, got %', timeout_seconds
      using errcode = '22023';
  end if;
  deadline := clock_timestamp() + make_interval(secs => timeout_seconds);
  loop
    return query select * from billing.operations as o where o.id = command_id;
    if found then
      return;
    end if;
    if own_xid is not null and exists (
      select from graphile_worker._private_jobs as j
      where j.xmin = own_xid::xid and json_typeof(j.payload) = 'object' and j.payload->>'id' = command_id) then
      raise exception 'billing.await_result: command % was enqueued by this same transaction, so no worker can see it yet', command_id
        using errcode = 'BL002',
              hint = 'commit first (psql: run each statement on its own, autocommit), then call billing.await_result';
    end if;
    if current_setting('transaction_isolation') <> 'read committed' then
      raise exception 'billing.await_result: no result for command % in this transaction''s snapshot (%), and it cannot see later commits',
        command_id, current_setting('transaction_isolation')
        using errcode = 'BL003',
              hint = 'call it in READ COMMITTED, the default, or on its own (autocommit)';
    end if;
    if clock_timestamp() >= deadline then
      raise exception 'billing.await_result: no result for command % after % seconds', command_id, timeout_seconds
        using errcode = 'BL001',
              hint = 'the command stays enqueued and applies once a worker runs (is one running?); call billing.await_result again to keep waiting';
    end if;
    perform pg_sleep(0.01);
  end loop;
end;
$$;

comment on function billing.await_result(text, double precision) is
  'billing.await_result(command_id text, timeout_seconds double precision default 10) returns setof billing.operations: '
  'waits up to timeout_seconds (not null, >= 0) for the result row of a command id and returns it. Errors: BL001 no result in time '
  '(the command stays enqueued), BL002 the command was enqueued by this same transaction (commit first), '
  'BL003 not READ COMMITTED (the snapshot cannot see later results).';

-- Owned by the owner role like the rest of the schema (0004), so SECURITY DEFINER carries no
-- superuser power when a superuser migrates.
do $owner$
declare
  owner_role text := coalesce(nullif(current_setting('pgbilling.owner_role', true), ''), 'billing_owner');
begin
  if pg_catalog.pg_has_role(current_user, owner_role, 'MEMBER') then
    execute format('alter function billing.await_result(text, double precision) owner to %I', owner_role);
  end if;
end
$owner$;

-- Down Migration
create or replace function billing.await_result(command_id text, timeout_seconds double precision default 10)
returns setof billing.operations
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
  deadline timestamptz := clock_timestamp() + make_interval(secs => timeout_seconds);
begin
  loop
    return query select * from billing.operations as o where o.id = command_id;
    if found then
      return;
    end if;
    if clock_timestamp() >= deadline then
      raise exception 'no result for command % after % seconds', command_id, timeout_seconds
        using errcode = '57014',
              hint = 'is a worker running? see graphile_worker.jobs for the job';
    end if;
    perform pg_sleep(0.01);
  end loop;
end;
$$;
