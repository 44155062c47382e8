-- Up Migration
-- Four group roles (NOLOGIN; an operator grants them to login users):
--   owner  owns both schemas and migrates them; billing.submit runs as this role, not as a superuser
--   worker reads and writes the ledger and graphile-worker's tables: the only role that moves money
--   client enqueues through billing.submit and reads results, balances and id conflicts; nothing in
--          graphile_worker (with USAGE there a client could complete or fail other callers' jobs)
--   reader reads everything in both schemas and writes nothing
-- Names come from the session settings pgbilling.{owner,worker,client,reader}_role, which
-- src/db/migrate.ts sets from BILLING_ROLE_*; roles are cluster-wide, so they are created only if
-- missing and several databases of one server share them.
do $roles$
declare
  owner_role  text := coalesce(nullif(current_setting('pgbilling.owner_role', true), ''), 'billing_owner');
  worker_role text := coalesce(nullif(current_setting('pgbilling.worker_role', true), ''), 'billing_worker');
  client_role text := coalesce(nullif(current_setting('pgbilling.client_role', true), ''), 'billing_client');
  reader_role text := coalesce(nullif(current_setting('pgbilling.reader_role', true), ''), 'billing_reader');
  role_name text;
  object record;
  creators text[];
  creator text;
begin
  if cardinality(array(select distinct unnest(array[owner_role, worker_role, client_role, reader_role]))) <> 4 then
    raise exception 'the four billing roles need four different names, got %, %, %, %',
      owner_role, worker_role, client_role, reader_role;
  end if;

  foreach role_name in array array[owner_role, worker_role, client_role, reader_role] loop
    if not exists (select from pg_catalog.pg_roles where rolname = role_name) then
      begin
        execute format('create role %I nologin', role_name);
      exception when duplicate_object or unique_violation then
        null; -- another database of this server created it at the same moment
      end;
    end if;
  end loop;

  -- The owner owns every object of both schemas, so that a login user in the owner role can run
  -- later migrations and the SECURITY DEFINER billing.submit holds no superuser power.
  if pg_catalog.pg_has_role(current_user, owner_role, 'MEMBER') then
    execute format('alter schema billing owner to %I', owner_role);
    execute format('alter schema graphile_worker owner to %I', owner_role);
    for object in
      select c.relkind, format('%I.%I', n.nspname, c.relname) as name
      from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
      where n.nspname in ('billing', 'graphile_worker') and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S', 'c')
        -- identity and serial sequences follow their table
        and not (c.relkind = 'S' and exists (
          select from pg_catalog.pg_depend as d
          where d.objid = c.oid and d.classid = 'pg_class'::regclass and d.deptype in ('a', 'i')))
    loop
      execute format('alter %s %s owner to %I',
        case object.relkind when 'v' then 'view' when 'm' then 'materialized view' when 'f' then 'foreign table'
                            when 'S' then 'sequence' when 'c' then 'type' else 'table' end,
        object.name, owner_role);
    end loop;
    for object in
      select p.oid::regprocedure::text as name, p.prokind
      from pg_catalog.pg_proc as p join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
      where n.nspname in ('billing', 'graphile_worker')
    loop
      execute format('alter %s %s owner to %I', case object.prokind when 'p' then 'procedure' else 'function' end, object.name, owner_role);
    end loop;
    if pg_catalog.to_regclass('public.pgbilling_migrations') is not null then
      execute format('grant select, insert, update, delete on public.pgbilling_migrations to %I', owner_role);
    end if;
  else
    raise warning 'billing roles: % is not a member of %, so the schemas keep their current owner', current_user, owner_role;
  end if;

  execute 'revoke all on schema billing, graphile_worker from public';
  execute 'revoke all on all tables in schema billing, graphile_worker from public';
  execute 'revoke execute on all functions in schema graphile_worker from public';

  -- worker
  execute format('grant usage on schema billing, graphile_worker to %I', worker_role);
  -- Results, the journal and id conflicts are append-only, even for the worker.
  execute format('grant select, insert on all tables in schema billing to %I', worker_role);
  execute format('grant update on billing.accounts, billing.holds to %I', worker_role);
  execute format('grant update, delete on billing.worker_liveness to %I', worker_role);
  execute format('grant usage, select on all sequences in schema billing to %I', worker_role);
  execute format('grant select, insert, update, delete on all tables in schema graphile_worker to %I', worker_role);
  execute format('grant usage, select, update on all sequences in schema graphile_worker to %I', worker_role);
  execute format('grant execute on all functions in schema graphile_worker to %I', worker_role);

  -- graphile-worker enables row-level security on its tables with no policy: only their owner sees
  -- a row. The worker and the reader are not the owner, so each gets a policy of its own.
  for object in
    select format('%I.%I', n.nspname, c.relname) as name
    from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
    where n.nspname = 'graphile_worker' and c.relkind = 'r' and c.relrowsecurity
  loop
    execute format('create policy billing_worker_all on %s for all to %I using (true) with check (true)', object.name, worker_role);
    execute format('create policy billing_reader_select on %s for select to %I using (true)', object.name, reader_role);
  end loop;

  -- client
  execute format('grant usage on schema billing to %I', client_role);
  execute format('grant execute on function billing.submit(text, json) to %I', client_role);
  execute format('grant select on billing.operations, billing.accounts, billing.id_conflicts to %I', client_role);

  -- reader
  execute format('grant usage on schema billing, graphile_worker to %I', reader_role);
  execute format('grant select on all tables in schema billing, graphile_worker to %I', reader_role);

  -- Tables that later migrations add (created by the owner or by whoever migrates) get the same
  -- worker and reader rights; the client gets nothing it is not granted by name.
  creators := array[current_user::text];
  if pg_catalog.pg_has_role(current_user, owner_role, 'MEMBER') and owner_role <> current_user then
    creators := creators || owner_role;
  end if;
  foreach creator in array creators loop
    execute format('alter default privileges for role %I in schema billing grant select, insert, update on tables to %I', creator, worker_role);
    execute format('alter default privileges for role %I in schema billing grant usage, select on sequences to %I', creator, worker_role);
    execute format('alter default privileges for role %I in schema billing, graphile_worker grant select on tables to %I', creator, reader_role);
    execute format('alter default privileges for role %I in schema graphile_worker grant select, insert, update, delete on tables to %I', creator, worker_role);
    execute format('alter default privileges for role %I in schema graphile_worker grant usage, select, update on sequences to %I', creator, worker_role);
    execute format('alter default privileges for role %I in schema graphile_worker grant execute on functions to %I', creator, worker_role);
  end loop;
end
$roles$;

-- Down Migration
-- Roles are shared by every database of the server and may own objects elsewhere: they stay.
-- Only this database's grants and policies go; ownership stays with the owner role.
do $roles$
declare
  role_name text;
  statement text;
begin
  foreach role_name in array array[
    coalesce(nullif(current_setting('pgbilling.worker_role', true), ''), 'billing_worker'),
    coalesce(nullif(current_setting('pgbilling.client_role', true), ''), 'billing_client'),
    coalesce(nullif(current_setting('pgbilling.reader_role', true), ''), 'billing_reader')] loop
    if exists (select from pg_catalog.pg_roles where rolname = role_name) then
      execute format('revoke all on all tables in schema billing, graphile_worker from %I', role_name);
      execute format('revoke all on all sequences in schema billing, graphile_worker from %I', role_name);
      execute format('revoke all on all functions in schema billing, graphile_worker from %I', role_name);
      execute format('revoke all on schema billing, graphile_worker from %I', role_name);
    end if;
  end loop;
  for statement in
    select format('drop policy %I on %I.%I', policyname, schemaname, tablename) from pg_catalog.pg_policies
    where schemaname = 'graphile_worker' and policyname in ('billing_worker_all', 'billing_reader_select')
  loop
    execute statement;
  end loop;
end
$roles$;
