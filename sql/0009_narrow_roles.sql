-- Up Migration
-- Roles as narrow as the privileges table of docs/security.md says (issue 10): column-level UPDATE for what
-- the worker writes, no default privilege that widens future tables, and billing.apply_access(),
-- which `billing migrate` runs after every migration (src/db/migrate.ts) so that whatever a
-- graphile-worker upgrade adds is owned by the owner role, has its row-level-security policies,
-- and gives the worker no more than running jobs needs.
do $narrow$
declare
  owner_role  text := coalesce(nullif(current_setting('pgbilling.owner_role', true), ''), 'billing_owner');
  worker_role text := coalesce(nullif(current_setting('pgbilling.worker_role', true), ''), 'billing_worker');
  client_role text := coalesce(nullif(current_setting('pgbilling.client_role', true), ''), 'billing_client');
  reader_role text := coalesce(nullif(current_setting('pgbilling.reader_role', true), ''), 'billing_reader');
  default_acl record;
begin
  -- The worker changes balances and closes holds, nothing else of a row: not the currency, not
  -- who a hold belongs to. SELECT ... FOR UPDATE needs UPDATE on one column, which these are.
  execute format('revoke update on billing.accounts, billing.holds from %I', worker_role);
  execute format('grant update (balance, held, updated_at) on billing.accounts to %I', worker_role);
  execute format('grant update (status, captured, captured_to, closed_by, closed_at) on billing.holds to %I', worker_role);
  -- Registrations are inserted (ids are random) and deleted, never updated.
  execute format('revoke update on billing.worker_liveness from %I', worker_role);
  -- Identity columns need no rights on their sequences.
  execute format('revoke all on all sequences in schema billing from %I', worker_role);

  execute 'revoke execute on function billing.await_result(text, double precision) from public';
  execute format('grant execute on function billing.await_result(text, double precision) to %I, %I', client_role, reader_role);

  -- Default privileges would hand every future table to the worker for writing (and so break
  -- "append-only" by accident): each migration grants by name instead.
  for default_acl in
    select pg_catalog.pg_get_userbyid(d.defaclrole) as creator, n.nspname as schema_name,
           case d.defaclobjtype when 'r' then 'tables' when 'S' then 'sequences' when 'f' then 'functions'
                                when 'T' then 'types' when 'n' then 'schemas' end as kind
    from pg_catalog.pg_default_acl as d join pg_catalog.pg_namespace as n on n.oid = d.defaclnamespace
    where n.nspname in ('billing', 'graphile_worker')
  loop
    if pg_catalog.pg_has_role(current_user, default_acl.creator, 'MEMBER') then
      execute format('alter default privileges for role %I in schema %I revoke all on %s from %I, %I, %I',
        default_acl.creator, default_acl.schema_name, default_acl.kind, worker_role, client_role, reader_role);
    else
      raise warning 'default privileges of % in schema % stay: % is not a member of that role',
        default_acl.creator, default_acl.schema_name, current_user;
    end if;
  end loop;
end
$narrow$;

-- Ownership, graphile-worker's grants and policies, and the reader's SELECT, from the catalog as it
-- is now. Runs as whoever migrates (not SECURITY DEFINER); PUBLIC may not call it.
create function billing.apply_access()
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  owner_role  text := coalesce(nullif(current_setting('pgbilling.owner_role', true), ''), 'billing_owner');
  worker_role text := coalesce(nullif(current_setting('pgbilling.worker_role', true), ''), 'billing_worker');
  reader_role text := coalesce(nullif(current_setting('pgbilling.reader_role', true), ''), 'billing_reader');
  object record;
begin
  if pg_has_role(current_user, owner_role, 'MEMBER') then
    execute format('alter schema billing owner to %I', owner_role);
    execute format('alter schema graphile_worker owner to %I', owner_role);
    for object in
      select c.relkind, format('%I.%I', n.nspname, c.relname) as name
      from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
      where (n.nspname in ('billing', 'graphile_worker') or (n.nspname = 'public' and c.relname = 'pgbilling_migrations'))
        and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
        and c.relowner <> to_regrole(owner_role)
        -- identity and serial sequences follow their table
        and not (c.relkind = 'S' and exists (
          select from pg_depend as d where d.objid = c.oid and d.classid = 'pg_class'::regclass and d.deptype in ('a', 'i')))
    loop
      execute format('alter %s %s owner to %I',
        case object.relkind when 'v' then 'view' when 'm' then 'materialized view' when 'f' then 'foreign table'
                            when 'S' then 'sequence' else 'table' end,
        object.name, owner_role);
    end loop;
    for object in
      select p.oid::regprocedure::text as name, p.prokind
      from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace
      where n.nspname in ('billing', 'graphile_worker') and p.proowner <> to_regrole(owner_role)
    loop
      execute format('alter %s %s owner to %I', case object.prokind when 'p' then 'procedure' else 'function' end, object.name, owner_role);
    end loop;
  else
    raise warning 'billing roles: % is not a member of %, so objects keep their current owner', current_user, owner_role;
  end if;

  execute 'revoke all on all tables in schema billing, graphile_worker from public';
  execute 'revoke execute on all functions in schema graphile_worker from public';

  -- graphile-worker's tables: what running jobs needs, table by table; a table a later
  -- graphile-worker adds gets the job tables' rights only if it is one of its _private_ tables.
  execute format('revoke all on all tables in schema graphile_worker from %I', worker_role);
  execute format('revoke all on all sequences in schema graphile_worker from %I', worker_role);
  for object in
    select format('%I.%I', n.nspname, c.relname) as name, c.oid, c.relname, c.relkind, c.relrowsecurity
    from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
    where n.nspname = 'graphile_worker' and c.relkind in ('r', 'p', 'v')
  loop
    execute format('grant %s on %s to %I',
      case when object.relkind = 'v' or object.relname = 'migrations' then 'select'
           when object.relname = '_private_tasks' then 'select, insert'
           when object.relname = '_private_known_crontabs' then 'select, insert, update'
           when object.relname like '\_private\_%' then 'select, insert, update, delete'
           else 'select' end,
      object.name, worker_role);
    execute format('grant select on %s to %I', object.name, reader_role);
    -- graphile-worker enables row-level security with no policy: only the owner would see a row.
    -- Created only where missing: CREATE POLICY locks the table against running workers.
    if object.relrowsecurity and not exists (select from pg_policy where polrelid = object.oid and polname = 'billing_worker_all') then
      execute format('create policy billing_worker_all on %s for all to %I using (true) with check (true)', object.name, worker_role);
    end if;
    if object.relrowsecurity and not exists (select from pg_policy where polrelid = object.oid and polname = 'billing_reader_select') then
      execute format('create policy billing_reader_select on %s for select to %I using (true)', object.name, reader_role);
    end if;
  end loop;
  execute format('grant usage, select on all sequences in schema graphile_worker to %I', worker_role);
  execute format('grant execute on all functions in schema graphile_worker to %I', worker_role);
  -- The reader reads every table of ours too, also ones later migrations add.
  execute format('grant select on all tables in schema billing to %I', reader_role);
end;
$$;
revoke execute on function billing.apply_access() from public;

select billing.apply_access();

-- Down Migration
drop function billing.apply_access();
