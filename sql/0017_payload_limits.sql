-- Up Migration
-- Payload sizes are decided where a payload enters the queue (issue 24, items 2 and 3). A worker
-- cannot answer a row it cannot fetch: node-postgres fails on a row over ~512 MB (and exits the
-- worker), and a 200 MB row costs a worker that much memory before any check of ours runs. So a
-- billing/ job never holds a command over 64 KiB: a trigger on graphile-worker's job table puts a
-- small stub in its place, which the worker answers as invalid_command ("payload: is N bytes, at
-- most 65536 are accepted"), filed under the command's own id when that id is the first or the last
-- field of the object (found by looking at the text's ends only) and is valid, else under the
-- derived one (src/commands/parse.ts). "64 KiB" is 65,536 octets of the payload's JSON text as
-- stored (UTF-8), whitespace included.
--
-- A batch job (an array payload) is judged per command: each element over 64 KiB becomes a stub,
-- and an array whose text is over 64 KiB is split into jobs of about 64 KiB each (at most two
-- commands' worth, 128 KiB), so no worker fetches one giant row of small commands and every
-- element still gets its own result. The parts may run in parallel, as separately added jobs do.
-- The job keeps its queue, priority, run_at, max_attempts and flags; the extra jobs carry no job
-- key.
--
-- The trigger's function runs only for rows over the limit (the WHEN clause), so the common case
-- costs one length check per row. Nothing here converts the payload to jsonb, which cannot hold a
-- string over 256 MB (nor \u0000); the json text is only measured, looked at near its ends and
-- hashed.

-- The stub for one command over the limit. `md5` tells one giant payload from another under the
-- same id (a replay against an id_conflict); it is not a security boundary.
create function billing.oversized_command_stub(command json)
returns json
language sql
immutable
parallel safe
set search_path = pg_catalog, pg_temp
as $$
  select json_build_object(
    'id', coalesce(
      -- In valid JSON text a quote is never escaped-free inside a string, so an object that
      -- starts with "id": "<no quote or backslash>" has that top-level id, and so does one that
      -- ends with it (followed by the object's one closing brace).
      substring(left(t, 1024) from '^\s*\{\s*"id"\s*:\s*"([^"\\]{1,255})"\s*[,}]'),
      substring(right(t, 1024) from '[{,]\s*"id"\s*:\s*"([^"\\]{1,255})"\s*\}\s*$')),
    'refused', 'payload too large',
    'payload_bytes', octet_length(t),
    'md5', md5(t))
  from (select command::text as t) as text_of
$$;

create function billing.limit_job_payload()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  limit_bytes constant integer := 65536;
  part record;
  first_part boolean := true;
begin
  if not exists (select from graphile_worker._private_tasks as tasks
                 where tasks.id = new.task_id and tasks.identifier like 'billing/%') then
    return new;
  end if;
  if json_typeof(new.payload) is distinct from 'array' then
    new.payload := billing.oversized_command_stub(new.payload);
    return new;
  end if;
  begin
    -- Parts by position: an element goes to the part in which its text starts, so a part holds
    -- at most 64 KiB plus its last element (itself at most 64 KiB once stubbed).
    for part in
      with elements as (
        select position,
               case when octet_length(element::text) > limit_bytes
                    then billing.oversized_command_stub(element) else element end as element
        from json_array_elements(new.payload) with ordinality as items(element, position)
      ), placed as (
        select position, element,
               (sum(octet_length(element::text) + 1) over (order by position)
                - octet_length(element::text) - 1) / limit_bytes as part_number
        from elements
      )
      select ('[' || string_agg(element::text, ',' order by position) || ']')::json as payload
      from placed
      group by part_number
      order by part_number
    loop
      if first_part then
        new.payload := part.payload;
        first_part := false;
      else
        insert into graphile_worker._private_jobs
          (job_queue_id, task_id, payload, priority, run_at, max_attempts, flags)
        values
          (new.job_queue_id, new.task_id, part.payload, new.priority, new.run_at, new.max_attempts, new.flags);
      end if;
    end loop;
    if first_part then
      new.payload := '[]';
    end if;
  exception when others then
    -- An array PostgreSQL cannot take apart (nested deeper than its stack allows): one stub for
    -- the job, answered under the job's id.
    new.payload := billing.oversized_command_stub(new.payload);
  end;
  return new;
end;
$$;

revoke execute on function billing.oversized_command_stub(json) from public;
revoke execute on function billing.limit_job_payload() from public;

-- UPDATE OF payload too: add_jobs with a job key appends a new array to a waiting job's array.
create trigger _100_billing_payload_limit
  before insert or update of payload on graphile_worker._private_jobs
  for each row
  when (octet_length(new.payload::text) > 65536)
  execute function billing.limit_job_payload();

-- billing.submit: the same as in 0006, but a command over 64 KiB is turned into its stub before it
-- is handed to add_job, the early refusal of derived ids looks only into
-- payloads of at most 64 KiB (a larger one is refused by the trigger anyway, and reading ->> over
-- hundreds of megabytes would copy them), and a payload holding a string PostgreSQL cannot turn
-- into text (\u0000: untranslatable_character; a lone surrogate: invalid_text_representation) is
-- left to the worker, which answers it.
create or replace function billing.submit(command_type text, payload json)
returns bigint
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  job_id bigint;
  element json;
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
  -- A command over 64 KiB becomes its stub here already, as the trigger would make it: add_job and
  -- add_jobs copy a payload many times over (a 40 MB one cost this backend 750 MB).
  if json_typeof(payload) = 'object' and octet_length(payload::text) > 65536 then
    payload := billing.oversized_command_stub(payload);
  end if;
  if octet_length(payload::text) <= 65536
     and (strpos(payload::text, 'job:') > 0 or strpos(payload::text, 'expire:') > 0) then
    begin
      for element in
        select payload where json_typeof(payload) = 'object'
        union all
        select e from json_array_elements(case when json_typeof(payload) = 'array' then payload else '[]' end) as e
      loop
        if json_typeof(element) = 'object'
           and (element->>'id' like 'job:%' or element->>'id' like 'expire:%'
                or (command_type = 'hold' and (element->>'hold' like 'job:%' or element->>'hold' like 'expire:%'))) then
          raise exception 'id %: ids starting with job: or expire: are derived by the service', element->>'id'
            using errcode = '22023',
                  hint = 'choose another id, or send none and the worker uses job:<job id>';
        end if;
      end loop;
    exception when untranslatable_character or invalid_text_representation then
      null;
    end;
  end if;
  select (graphile_worker.add_job('billing/' || command_type, payload, max_attempts => 25)).id into job_id;
  return job_id;
end;
$$;

-- Down Migration
drop trigger _100_billing_payload_limit on graphile_worker._private_jobs;
drop function billing.limit_job_payload();
drop function billing.oversized_command_stub(json);
create or replace function billing.submit(command_type text, payload json)
returns bigint
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  job_id bigint;
  element json;
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
  if strpos(payload::text, 'job:') > 0 or strpos(payload::text, 'expire:') > 0 then
    begin
      for element in
        select payload where json_typeof(payload) = 'object'
        union all
        select e from json_array_elements(case when json_typeof(payload) = 'array' then payload else '[]' end) as e
      loop
        if json_typeof(element) = 'object'
           and (element->>'id' like 'job:%' or element->>'id' like 'expire:%'
                or (command_type = 'hold' and (element->>'hold' like 'job:%' or element->>'hold' like 'expire:%'))) then
          raise exception 'id %: ids starting with job: or expire: are derived by the service', element->>'id'
            using errcode = '22023',
                  hint = 'choose another id, or send none and the worker uses job:<job id>';
        end if;
      end loop;
    exception when untranslatable_character then
      null;
    end;
  end if;
  select (graphile_worker.add_job('billing/' || command_type, payload, max_attempts => 25)).id into job_id;
  return job_id;
end;
$$;
