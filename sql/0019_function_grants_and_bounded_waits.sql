-- Up Migration
-- 1. Every function in schema billing gets an explicit decision on who may run it. PostgreSQL
--    gives PUBLIC EXECUTE on a new function; docs/security.md says PUBLIC holds nothing, and
--    test/roles.test.ts lists each function with the roles that may run it.
--    - account_history (SECURITY DEFINER): the client's history read and DBAs' paging.
--    - request_field: DBAs' queries; the worker too, because inserting a result evaluates the
--      history indexes built on it, and an index expression runs with the inserting role's rights.
--    - the journal's trigger functions: only as triggers, which checks no EXECUTE right.
-- 2. billing.await_result bounds its wait: at most 300 seconds (22023 beyond), so that a caller
--    that went away cannot leave its backend polling for years. A caller that needs longer calls
--    again. And the database's sessions check every second, during a statement, whether their
--    client is still there (client_connection_check_interval): a wait whose client disconnected
--    ends within about a second. Set on the function it would do nothing: PostgreSQL arms that
--    check when a statement starts, from the session's value, which a function's SET does not change.
do $grants$
declare
  worker_role text := coalesce(nullif(current_setting('pgbilling.worker_role', true), ''), 'billing_worker');
  client_role text := coalesce(nullif(current_setting('pgbilling.client_role', true), ''), 'billing_client');
  reader_role text := coalesce(nullif(current_setting('pgbilling.reader_role', true), ''), 'billing_reader');
begin
  execute 'revoke execute on function billing.account_history(text, bigint, integer) from public';
  execute format('grant execute on function billing.account_history(text, bigint, integer) to %I, %I',
    client_role, reader_role);
  execute 'revoke execute on function billing.request_field(json, text) from public';
  execute format('grant execute on function billing.request_field(json, text) to %I, %I, %I',
    worker_role, client_role, reader_role);
  execute 'revoke execute on function billing.check_entry_references() from public';
  execute 'revoke execute on function billing.refuse_journal_target_change() from public';
end
$grants$;

do $check_client$
begin
  if pg_catalog.pg_has_role(current_user,
       (select d.datdba from pg_catalog.pg_database as d where d.datname = pg_catalog.current_database()), 'MEMBER') then
    execute format('alter database %I set client_connection_check_interval = %L', pg_catalog.current_database(), '1s');
  else
    raise notice 'billing: not the database owner, so client_connection_check_interval is left as it is: set it to 1s for this database (docs/commands.md)';
  end if;
exception when invalid_parameter_value or undefined_object then
  -- Not on this platform (it needs Linux's POLLRDHUP) or this PostgreSQL (before 14).
  raise notice 'billing: client_connection_check_interval is not available here: % (waits still end at their timeout)', sqlerrm;
end
$check_client$;

create or replace function billing.await_result(command_id text, timeout_seconds double precision default 10)
returns setof billing.operations
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  max_timeout_seconds constant double precision := 300;
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
  if timeout_seconds > max_timeout_seconds then
    raise exception 'billing.await_result: timeout_seconds must be at most % seconds, got %', max_timeout_seconds, timeout_seconds
      using errcode = '22023',
            hint = 'to wait longer, call billing.await_result again when it ends with BL001';
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
  'waits up to timeout_seconds (not null, 0 to 300) for the result row of a command id and returns it. Errors: BL001 no result in time '
  '(the command stays enqueued), BL002 the command was enqueued by this same transaction (commit first), '
  'BL003 not READ COMMITTED (the snapshot cannot see later results), 22023 timeout_seconds out of range.';

-- Down Migration
do $check_client$
begin
  execute format('alter database %I reset client_connection_check_interval', pg_catalog.current_database());
exception when insufficient_privilege then
  null;
end
$check_client$;

do $grants$
begin
  execute 'grant execute on function billing.account_history(text, bigint, integer) to public';
  execute 'grant execute on function billing.request_field(json, text) to public';
  execute 'grant execute on function billing.check_entry_references() to public';
  execute 'grant execute on function billing.refuse_journal_target_change() to public';
end
$grants$;
-- billing.await_result as sql/0010 left it (its Up section), without the bound.
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
