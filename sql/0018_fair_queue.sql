-- Up Migration
-- Fairness between logins (issue 24 item 11, SPEC guarantee 8). graphile-worker fetches by
-- priority (lower first), then run_at. A login's billing job gets as its priority the number of
-- that login's commands already waiting, in steps of `commands_per_priority_step`: a login that
-- sent 100,000 commands has its later ones at priorities up to 1,000, while another login's one
-- command goes in at 0, ahead of all but the first step of the burst. A login with more than
-- `max_waiting_per_login` commands waiting is refused (SQLSTATE 53400) until its backlog drains.
--
-- Set on the jobs table, so that it holds for billing.submit and for add_job/add_jobs called
-- directly alike. The login is session_user (SET ROLE and SECURITY DEFINER functions change only
-- current_user). Jobs of other tasks, billing/expire_hold (the service's own, priority -10) and jobs
-- with a job_key (graphile-worker may merge them into an existing job) are neither counted nor
-- reprioritized.
--
-- Keeping the count cheap at ~10,000 inserts a second:
-- * each job row carries its login and its number of commands in `flags` (graphile-worker only
--   tests flags for keys named in forbiddenFlags, which the service does not use);
-- * the count lives in billing.submitter_backlog, one row per login and shard; the waiting
--   commands of a login are the sum of its shards;
-- * an inserting transaction reads its login's count once (first job), counts its own jobs in a
--   transaction-local setting, and adds them to the count at commit (a deferred trigger): a
--   counter row is locked for the commit only, never from the first insert to the commit, and is
--   updated once per transaction, never once per job (a row updated 100,000 times by one
--   transaction is a chain of 100,000 versions that every update walks again);
-- * the shard is the inserting or completing backend's pid modulo 16, so concurrent transactions
--   of one login seldom queue on one row;
-- * a completed job is deleted by graphile-worker: one statement-level trigger per completion
--   batch subtracts the batch's commands, per login, in login order (two completions lock the
--   rows they share in one order and cannot deadlock). Ledger transactions touch no counter row
--   (the service's expiry jobs are not counted), so the ledger's lock order is unchanged.
create table billing.submitter_backlog (
  login text not null,
  shard int2 not null check (shard between 0 and 15),
  waiting bigint not null default 0,
  primary key (login, shard)
);
comment on table billing.submitter_backlog is
  'Billing commands waiting in the queue per login (session_user), summed over its shards; maintained by triggers on graphile_worker._private_jobs.';

create table billing.fairness_settings (
  only_row boolean primary key default true check (only_row),
  max_waiting_per_login bigint not null default 100000 check (max_waiting_per_login > 0),
  commands_per_priority_step int4 not null default 100 check (commands_per_priority_step > 0)
);
comment on table billing.fairness_settings is
  'Per-login cap on waiting commands and the size of a priority step (docs/operations.md, Fairness between logins); `billing migrate` sets them from BILLING_MAX_WAITING_PER_LOGIN and BILLING_COMMANDS_PER_PRIORITY_STEP.';
comment on column billing.submitter_backlog.login is 'The login (session_user) that enqueued the commands.';
comment on column billing.submitter_backlog.shard is 'Inserting or completing backend''s pid modulo 16: spreads one login''s updates over 16 rows.';
comment on column billing.submitter_backlog.waiting is 'This shard''s share of the login''s waiting commands (a shard alone may be negative; the sum is not).';
comment on column billing.fairness_settings.only_row is 'Always true: the table has one row.';
comment on column billing.fairness_settings.max_waiting_per_login is 'A login with this many commands waiting is refused more (SQLSTATE 53400).';
comment on column billing.fairness_settings.commands_per_priority_step is 'Waiting commands of a login per step of graphile-worker priority given to its next jobs.';
insert into billing.fairness_settings default values;

-- What an inserting transaction reads once, at its first counted job: the login's waiting
-- commands, the cap, the step, and the ids of the counted tasks.
create function billing.submitter_state()
returns text
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
  select concat_ws(',',
    coalesce((select sum(b.waiting) from billing.submitter_backlog as b where b.login = session_user), 0),
    0, s.max_waiting_per_login, s.commands_per_priority_step,
    '|' || coalesce((select string_agg(t.id::text, '|') from graphile_worker._private_tasks as t
                     where t.identifier like 'billing/%' and t.identifier <> 'billing/expire_hold'), '') || '|')
  from billing.fairness_settings as s;
$$;

-- Row trigger, before insert: the priority, the cap, the login in flags. It runs once per job, so
-- it does little: one transaction-local setting (billing.fair_state: waiting, added by this
-- transaction, cap, step, counted task ids) read and written, no query after the first job. Not
-- SECURITY DEFINER (no search_path switch per row): it runs as the inserter, reading only
-- graphile_worker's tasks, which whoever may insert jobs may read.
create function billing.jobs_fair_priority()
returns trigger
language plpgsql
as $$
declare
  state text := pg_catalog.current_setting('billing.fair_state', true);
  parts text[];
  added bigint;
  commands int4;
begin
  if new.key is null and state is not null and state <> '' then
    parts := pg_catalog.string_to_array(state, ',');
    if pg_catalog.strpos(parts[5], '|' || new.task_id || '|') = 0 then
      parts := null;  -- another task, or a billing one created since: look it up
    end if;
  end if;
  if parts is null and (new.key is not null or not exists (
    select from graphile_worker._private_tasks as t
    where t.id = new.task_id and t.identifier like 'billing/%' and t.identifier <> 'billing/expire_hold'
  )) then
    -- Not counted: a login carried over from an application's own flags would be subtracted later.
    if new.flags is not null then
      new.flags := new.flags - 'billing:login'::text - 'billing:commands'::text;
    end if;
    return new;
  end if;
  if parts is null then
    parts := pg_catalog.string_to_array(
      coalesce(nullif(state, ''), billing.submitter_state()), ',');
  end if;
  added := parts[2]::int8;
  commands := case when pg_catalog.json_typeof(new.payload) = 'array'
                   then greatest(pg_catalog.json_array_length(new.payload), 1) else 1 end;
  if parts[1]::int8 + added + commands > parts[3]::int8 then
    raise exception 'login % has % billing commands waiting; % more would pass the cap of % per login',
      session_user, parts[1]::int8 + added, commands, parts[3]
      using errcode = '53400',
            hint = 'wait for results before sending more; the cap is billing.fairness_settings.max_waiting_per_login (BILLING_MAX_WAITING_PER_LOGIN at billing migrate)';
  end if;
  new.priority := least((parts[1]::int8 + added) / parts[4]::int8, 32767);
  new.flags := coalesce(new.flags, '{}'::jsonb)
    || pg_catalog.jsonb_build_object('billing:login', session_user::text, 'billing:commands', commands);
  parts[2] := (added + commands)::text;
  perform pg_catalog.set_config('billing.fair_state', pg_catalog.array_to_string(parts, ','), true);
  return new;
end;
$$;

-- Deferred row trigger, queued (by its WHEN) only for the first counted job of a transaction, the
-- one whose own commands are all the transaction has added so far: at commit, adds the
-- transaction's commands to its login's count.
create function billing.jobs_fair_flush()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  parts text[] := string_to_array(current_setting('billing.fair_state', true), ',');
begin
  if parts is null or cardinality(parts) <> 5 or parts[2]::int8 = 0 then
    return null;
  end if;
  insert into billing.submitter_backlog as b (login, shard, waiting)
  values (session_user, pg_backend_pid() % 16, parts[2]::int8)
  on conflict (login, shard) do update set waiting = b.waiting + excluded.waiting;
  -- Flushed (SET CONSTRAINTS ALL IMMEDIATE can run this before the commit): later jobs of the
  -- transaction count from here, and the next one queues a flush again.
  parts[1] := (parts[1]::int8 + parts[2]::int8)::text;
  parts[2] := '0';
  perform set_config('billing.fair_state', array_to_string(parts, ','), true);
  return null;
end;
$$;

-- Statement trigger, after delete (graphile-worker deletes a job once it completed): subtracts the
-- deleted jobs' commands from their logins' counts, in login order.
create function billing.jobs_fair_done()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  insert into billing.submitter_backlog as b (login, shard, waiting)
  select d.flags->>'billing:login', pg_backend_pid() % 16, -sum((d.flags->>'billing:commands')::int8)
  from done as d
  where d.flags ? 'billing:login'
  group by 1
  order by 1
  on conflict (login, shard) do update set waiting = b.waiting + excluded.waiting;
  return null;
end;
$$;

create trigger fair_priority before insert on graphile_worker._private_jobs
  for each row execute function billing.jobs_fair_priority();
create constraint trigger fair_flush after insert on graphile_worker._private_jobs
  deferrable initially deferred
  for each row when (pg_catalog.split_part(pg_catalog.current_setting('billing.fair_state', true), ',', 2)
                     = new.flags->>'billing:commands')
  execute function billing.jobs_fair_flush();
create trigger fair_done after delete on graphile_worker._private_jobs
  referencing old table as done
  for each statement execute function billing.jobs_fair_done();

do $grants$
declare
  reader_role text := coalesce(nullif(current_setting('pgbilling.reader_role', true), ''), 'billing_reader');
begin
  execute 'revoke all on function billing.submitter_state(), billing.jobs_fair_priority(), billing.jobs_fair_flush(), billing.jobs_fair_done() from public';
  execute format('grant select on billing.submitter_backlog, billing.fairness_settings to %I', reader_role);
end
$grants$;

-- Down Migration
drop trigger fair_done on graphile_worker._private_jobs;
drop trigger fair_flush on graphile_worker._private_jobs;
drop trigger fair_priority on graphile_worker._private_jobs;
drop function billing.jobs_fair_done();
drop function billing.jobs_fair_flush();
drop function billing.jobs_fair_priority();
drop function billing.submitter_state();
drop table billing.fairness_settings;
drop table billing.submitter_backlog;
