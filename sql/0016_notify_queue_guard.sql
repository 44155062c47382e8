-- Up Migration
-- PostgreSQL's NOTIFY queue is one per server. A session that LISTENs and then sits in an open
-- transaction (or in one long statement) keeps every notification after it in the queue; once the
-- queue is full, every transaction that sends NOTIFY fails at commit, billing.submit included
-- (graphile_worker.add_job always notifies). Any login can LISTEN, so a client or reader login can
-- do this. Two defences live here (docs/security.md, "The NOTIFY queue"):
-- 1. billing.end_queue_pinning_sessions(grace_ms), which every worker's watchdog calls when the
--    queue fills up (src/worker/notify-watchdog.ts): it ends the sessions of client and reader
--    logins that have been idle in a transaction, or in one statement, for longer than grace_ms.
--    It runs as the owner role, which gets pg_signal_backend (which cannot signal a superuser's
--    session; pg_read_all_stats, to see other logins' states, it has since 0008); the worker role
--    gets EXECUTE on this function only, so a worker login cannot end any other session.
-- 2. Timeouts as role defaults of the client and reader roles: a first line only. PostgreSQL
--    applies a role's defaults to sessions that log in as that role, not as a member of it, and a
--    login can SET them away: docs/security.md shows the same ALTER ROLE for each login. The
--    function above is the guarantee.
do $guard$
declare
  owner_role  text := coalesce(nullif(current_setting('pgbilling.owner_role', true), ''), 'billing_owner');
  worker_role text := coalesce(nullif(current_setting('pgbilling.worker_role', true), ''), 'billing_worker');
  client_role text := coalesce(nullif(current_setting('pgbilling.client_role', true), ''), 'billing_client');
  reader_role text := coalesce(nullif(current_setting('pgbilling.reader_role', true), ''), 'billing_reader');
  setting     text[];
begin
  -- Role names are written into the function's text: at run time no pgbilling.* setting is set.
  execute format($f$
    create function billing.end_queue_pinning_sessions(grace_ms bigint)
    returns table (pid integer, login text, state text, since timestamptz, ended boolean)
    language sql
    volatile
    security definer
    set search_path = pg_catalog, pg_temp
    as $body$
      -- Materialized, so that pg_terminate_backend only ever sees the rows chosen here.
      with pinning as materialized (
        select a.pid, a.usename::text as login, a.state,
               case when a.state = 'active' then a.query_start else a.state_change end as since
        from pg_stat_activity as a join pg_roles as r on r.oid = a.usesysid
        where a.backend_type = 'client backend'
          and a.pid <> pg_backend_pid()
          and not r.rolsuper
          and (pg_has_role(a.usesysid, %1$L, 'MEMBER') or pg_has_role(a.usesysid, %2$L, 'MEMBER'))
          and not pg_has_role(a.usesysid, %3$L, 'MEMBER')
          and not pg_has_role(a.usesysid, %4$L, 'MEMBER')
          and ((a.state like 'idle in transaction%%'
                and a.state_change < clock_timestamp() - make_interval(secs => grace_ms / 1000.0))
            or (a.state = 'active'
                and a.query_start < clock_timestamp() - make_interval(secs => grace_ms / 1000.0))))
      select p.pid, p.login, p.state, p.since, pg_terminate_backend(p.pid) from pinning as p
    $body$$f$, client_role, reader_role, worker_role, owner_role);
  execute 'revoke execute on function billing.end_queue_pinning_sessions(bigint) from public';
  execute format('grant execute on function billing.end_queue_pinning_sessions(bigint) to %I', worker_role);
  begin
    -- Role memberships and role settings are the server's, not this database's: migrations of
    -- several databases at once (the test suite's files) may write the same catalog row, and one
    -- of them then fails with "tuple concurrently updated" (internal_error) or a duplicate key
    -- (unique_violation, the first setting of a role). Each statement is
    -- tried again until its effect is in place.
    for attempt in 1..20 loop
      exit when pg_has_role(owner_role, 'pg_signal_backend', 'MEMBER');
      begin
        execute format('grant pg_signal_backend to %I', owner_role);
      exception when internal_error or unique_violation then
        perform pg_sleep(0.05 * attempt);
      end;
    end loop;
  exception when insufficient_privilege then
    raise warning 'billing: % cannot grant pg_signal_backend to %; until a superuser does, the NOTIFY-queue watchdog cannot end sessions (docs/security.md)',
      current_user, owner_role;
  end;

  foreach setting slice 1 in array array[
    array[client_role, 'idle_in_transaction_session_timeout', '30s'],
    array[client_role, 'statement_timeout', '2min'],
    array[reader_role, 'idle_in_transaction_session_timeout', '60s'],
    array[reader_role, 'statement_timeout', '10min']] loop
    for attempt in 1..20 loop
      exit when exists (
        select from pg_catalog.pg_db_role_setting as s join pg_catalog.pg_roles as r on r.oid = s.setrole
        where r.rolname = setting[1] and s.setdatabase = 0 and setting[2] || '=' || setting[3] = any(s.setconfig));
      begin
        execute format('alter role %I set %I = %L', setting[1], setting[2], setting[3]);
      exception when internal_error or unique_violation then
        perform pg_sleep(0.05 * attempt);
      end;
    end loop;
  end loop;
end
$guard$;

-- Down Migration
-- The role defaults and the owner's memberships are cluster-wide and may serve other databases: they stay.
drop function billing.end_queue_pinning_sessions(bigint);
