-- Up Migration
-- Liveness without advisory locks (issue 10). Any login may take any advisory lock, so a lock
-- cannot say "this worker is alive": a reader session holding a dead worker's liveness key kept its
-- jobs locked. A worker's registration now names its session by (backend pid, backend_start): the
-- pair is in pg_stat_activity exactly as long as that session lives, and no login can make a
-- backend with the same pair (a bare pid can be reused by another backend).
alter table billing.worker_liveness add column backend_start timestamptz;
-- Rows of workers running during the upgrade: their session's start if it is still there; a
-- start no backend has otherwise (such a row is dead).
update billing.worker_liveness as r
set backend_start = coalesce((select a.backend_start from pg_catalog.pg_stat_activity as a where a.pid = r.backend_pid), '-infinity');
alter table billing.worker_liveness alter column backend_start set not null;
alter table billing.worker_liveness drop column lock_key;

-- The reaper's question. pg_stat_activity shows another role's backend_start only to members of
-- that role or of pg_read_all_stats; worker logins may differ, so this function (owned by the
-- owner role, which gets pg_read_all_stats) answers for the registered sessions and nothing else.
-- 'unknown': the pid is there but its start is hidden (the owner lacks pg_read_all_stats).
create function billing.worker_liveness_sessions()
returns table (id text, session text)
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
  select r.id,
         case when a.pid is null then 'dead'
              when a.backend_start is null then 'unknown'
              when a.backend_start = r.backend_start then 'alive'
              else 'dead' end
  from billing.worker_liveness as r
  left join pg_catalog.pg_stat_activity as a on a.pid = r.backend_pid
$$;
revoke execute on function billing.worker_liveness_sessions() from public;

do $grants$
declare
  owner_role  text := coalesce(nullif(current_setting('pgbilling.owner_role', true), ''), 'billing_owner');
  worker_role text := coalesce(nullif(current_setting('pgbilling.worker_role', true), ''), 'billing_worker');
begin
  execute format('grant execute on function billing.worker_liveness_sessions() to %I', worker_role);
  if pg_catalog.pg_has_role(current_user, owner_role, 'MEMBER') then
    execute format('alter function billing.worker_liveness_sessions() owner to %I', owner_role);
  end if;
  begin
    execute format('grant pg_read_all_stats to %I', owner_role);
  exception when insufficient_privilege then
    raise warning 'cannot grant pg_read_all_stats to %: dead workers whose login differs from the reaper''s are not recovered until a superuser runs: grant pg_read_all_stats to %',
      owner_role, owner_role;
  end;
end
$grants$;

-- Down Migration
drop function billing.worker_liveness_sessions();
alter table billing.worker_liveness add column lock_key int4 not null default 0;
alter table billing.worker_liveness drop column backend_start;
