-- Up Migration
-- Closing the edges (issue 9).

-- The request is kept as it was sent: json keeps its text (1e3 stays 1e3, 12345678901234567890 keeps
-- its digits, "a\u0000b" stays escaped), where jsonb normalizes numbers and refuses \u0000 and lone
-- surrogates. The worker writes the payload's JSON text with each number as written.
alter table billing.operations alter column request type json using request::json;
alter table billing.id_conflicts alter column request type json using request::json;

-- Ids the service derives may be longer than a client's: expire:<hold id of 128 characters> is 135.
-- A client's id stays 1 to 128 characters, and never starts with job: or expire: (the worker and
-- billing.submit refuse that).
alter table billing.operations drop constraint id_length;
alter table billing.operations add constraint id_length
  check (char_length(id) between 1 and 128 or (id ~ '^(job|expire):' and char_length(id) <= 256));

-- billing.submit refuses up front what the worker would refuse by id: an id the service derives.
-- (Unknown command types, expire_hold included, were refused already.)
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
  -- The worker refuses these ids anyway (whatever their spelling): this is the early answer for
  -- the plain spelling. Only payloads that mention one are looked into, and a payload holding
  -- \u0000 (which json keeps but cannot turn into text) is left to the worker.
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

-- Down Migration
alter table billing.operations drop constraint id_length;
alter table billing.operations add constraint id_length check (char_length(id) between 1 and 128);
alter table billing.operations alter column request type jsonb using request::jsonb;
alter table billing.id_conflicts alter column request type jsonb using request::jsonb;
