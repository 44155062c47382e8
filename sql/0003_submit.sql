-- Up Migration
-- The one way in for applications that should not touch graphile-worker's schema: enqueue a billing
-- command. SECURITY DEFINER with a fixed search_path (pg_temp last, so a caller's temporary objects
-- cannot stand in for ours); only billing/* tasks can be enqueued through it.
create function billing.submit(command_type text, payload json)
returns bigint
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  job_id bigint;
begin
  if command_type is null or command_type not in
     ('open_account', 'credit', 'debit', 'transfer', 'hold', 'capture', 'release') then
    raise exception 'unknown billing command type: %', coalesce(command_type, 'null')
      using errcode = '22023',
            hint = 'one of open_account, credit, debit, transfer, hold, capture, release';
  end if;
  if payload is null or json_typeof(payload) not in ('object', 'array') then
    raise exception 'payload must be a JSON object (or an array of them for a batch job)'
      using errcode = '22023';
  end if;
  select (graphile_worker.add_job('billing/' || command_type, payload, max_attempts => 25)).id into job_id;
  return job_id;
end;
$$;

revoke execute on function billing.submit(text, json) from public;

comment on function billing.submit(text, json) is
  'Enqueue a billing command; returns the graphile-worker job id. The result appears in billing.operations.';

-- Down Migration
drop function billing.submit(text, json);
