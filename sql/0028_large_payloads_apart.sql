-- Up Migration
-- A worker's memory holds whatever one fetch brings: graphile-worker fetches up to 3 x
-- BILLING_CONCURRENCY jobs (1,200 at the defaults) with their payloads, and 1,200 legal payloads of
-- 60 KiB are ~72 MB of JSON text, parsed on arrival: a worker with the deployed
-- --max-old-space-size=128 ran out of memory at its first fetch and every restart did the same
-- (issue 24 item 2; `node chaos/large-payloads.ts`). So a billing command job whose payload is over
-- 4 KiB keeps it here, and the job row carries a small marker: a fetch brings at most 1,200 x 4 KiB
-- of payload, and each task loads its own payload when it runs, under a per-process bound on the
-- bytes loaded at once (src/worker/command-task.ts).
--
-- The trigger runs after billing's other triggers on the jobs table (_100_billing_payload_limit
-- stubs a command over 64 KiB and splits a batch job over it; fair_priority counts a batch job's
-- commands from the array), on insert and on any update of the payload (graphile-worker rewrites a
-- batch job's payload to its failed elements). A payload is loaded by its job's own id, never by
-- anything the marker says, so a client that writes a marker itself gets an invalid_command.
-- A completed job is deleted by graphile-worker, and its payload with it (one statement trigger per
-- completion batch).
create table billing.job_payloads (
  job_id bigint primary key,
  payload json not null
);
comment on table billing.job_payloads is
  'Payloads over 4 KiB of billing command jobs, kept out of graphile_worker._private_jobs so that a fetch of jobs stays small; maintained by triggers on that table.';
comment on column billing.job_payloads.job_id is 'The job''s id in graphile_worker._private_jobs.';
comment on column billing.job_payloads.payload is 'The job''s payload as it was added (JSON text as sent).';

create function billing.job_payload_apart()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if not exists (select from graphile_worker._private_tasks as tasks
                 where tasks.id = new.task_id and tasks.identifier like 'billing/%'
                   and tasks.identifier <> 'billing/expire_hold') then
    return new;
  end if;
  insert into billing.job_payloads as p (job_id, payload) values (new.id, new.payload)
  on conflict (job_id) do update set payload = excluded.payload;
  new.payload := json_build_object('billing:payload_apart', octet_length(new.payload::text));
  return new;
end;
$$;

create function billing.job_payloads_done()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  delete from billing.job_payloads as p using done as d where p.job_id = d.id;
  return null;
end;
$$;

create trigger payload_apart before insert or update of payload on graphile_worker._private_jobs
  for each row when (octet_length(new.payload::text) > 4096)
  execute function billing.job_payload_apart();
create trigger payload_apart_done after delete on graphile_worker._private_jobs
  referencing old table as done
  for each statement execute function billing.job_payloads_done();

do $grants$
declare
  worker_role text := coalesce(nullif(current_setting('pgbilling.worker_role', true), ''), 'billing_worker');
begin
  execute 'revoke all on function billing.job_payload_apart(), billing.job_payloads_done() from public';
  execute format('grant select on billing.job_payloads to %I', worker_role);
end
$grants$;

-- Down Migration
drop trigger payload_apart_done on graphile_worker._private_jobs;
drop trigger payload_apart on graphile_worker._private_jobs;
drop function billing.job_payloads_done();
drop function billing.job_payload_apart();
drop table billing.job_payloads;
