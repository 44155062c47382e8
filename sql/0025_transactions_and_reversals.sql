-- Up Migration
-- Several moves as one (issue 20, item 1): the `transaction` command. The closed lists grow
-- (operation types, result codes, billing.submit's command types; test/contract.test.ts compares
-- them with src/commands/).

-- The closed lists, rewritten whole. NOT VALID then VALIDATE: the check of existing rows does not
-- hold a lock that stops the workers' inserts while it reads the table.
alter table billing.operations drop constraint type_known;
alter table billing.operations add constraint type_known check (type in ('open_account', 'credit', 'debit', 'transfer',
  'hold', 'capture', 'release', 'expire', 'transaction')) not valid;
alter table billing.operations validate constraint type_known;

alter table billing.operations drop constraint code_known;
alter table billing.operations add constraint code_known check (code in (
  'ok', 'invalid_command', 'account_exists', 'account_not_found', 'same_account', 'currency_mismatch',
  'insufficient_funds', 'overflow', 'hold_exists', 'hold_not_found', 'hold_closed', 'amount_exceeds_hold',
  'account_frozen', 'account_closed', 'limit_exceeded')) not valid;
alter table billing.operations validate constraint code_known;
comment on constraint code_known on billing.operations is
  'The closed list of result codes (src/commands/contract.ts resultCodes, without id_conflict, which writes no row).';

-- The accounts a transaction's legs name: its request does not name them at the top level, where
-- account history looks (sql/0011), so the result carries them.
alter table billing.operations add column accounts jsonb,
  add constraint accounts_is_array check (accounts is null or jsonb_typeof(accounts) = 'array');
create index operations_accounts on billing.operations using gin (accounts jsonb_path_ops) where accounts is not null;
comment on column billing.operations.accounts is
  'For a transaction: the accounts its legs name, a JSON array of ids (billing.account_history finds them); null for other types.';

-- An account's history (sql/0011, 0021) finds transactions through `accounts`.
create or replace function billing.account_history(account_id text, after_seq bigint default 0, page_size integer default 100)
returns setof billing.operations
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
  select o.*
  from billing.operations as o
  where o.seq in (
    select found.seq from (
      (select seq from billing.operations
       where billing.request_field(request, 'account') = account_id
         and billing.request_field(request, 'account') is not null and seq > after_seq
       order by seq limit page_size)
      union
      (select seq from billing.operations
       where billing.request_field(request, 'from') = account_id
         and billing.request_field(request, 'from') is not null and seq > after_seq
       order by seq limit page_size)
      union
      (select seq from billing.operations
       where billing.request_field(request, 'to') = account_id
         and billing.request_field(request, 'to') is not null and seq > after_seq
       order by seq limit page_size)
      union
      (select seq from billing.operations
       where accounts @> jsonb_build_array(account_id) and accounts is not null and seq > after_seq
       order by seq limit page_size)
      union
      (select by_hold.seq
       from billing.holds as h
       cross join lateral (
         select seq from billing.operations
         where billing.request_field(request, 'hold') = h.hold and type in ('capture', 'release', 'expire') and seq > after_seq
         order by seq limit page_size) as by_hold
       where h.account = account_id)
    ) as found
    order by found.seq
    limit page_size)
  order by o.seq
$$;


create or replace function billing.account_history_before(account_id text, before_seq bigint default null, page_size integer default 100)
returns setof billing.operations
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
  -- The same four ways a result names an account as billing.account_history (0011), each read
  -- backwards from before_seq (null: from the end) on its own index.
  select o.*
  from billing.operations as o
  where o.seq in (
    select found.seq from (
      (select seq from billing.operations
       where billing.request_field(request, 'account') = account_id
         and billing.request_field(request, 'account') is not null and seq < coalesce(before_seq, 9223372036854775807)
       order by seq desc limit page_size)
      union
      (select seq from billing.operations
       where billing.request_field(request, 'from') = account_id
         and billing.request_field(request, 'from') is not null and seq < coalesce(before_seq, 9223372036854775807)
       order by seq desc limit page_size)
      union
      (select seq from billing.operations
       where billing.request_field(request, 'to') = account_id
         and billing.request_field(request, 'to') is not null and seq < coalesce(before_seq, 9223372036854775807)
       order by seq desc limit page_size)
      union
      (select seq from billing.operations
       where accounts @> jsonb_build_array(account_id) and accounts is not null and seq < coalesce(before_seq, 9223372036854775807)
       order by seq desc limit page_size)
      union
      (select by_hold.seq
       from billing.holds as h
       cross join lateral (
         select seq from billing.operations
         where billing.request_field(request, 'hold') = h.hold and type in ('capture', 'release', 'expire')
           and seq < coalesce(before_seq, 9223372036854775807)
         order by seq desc limit page_size) as by_hold
       where h.account = account_id)
    ) as found
    order by found.seq desc
    limit page_size)
  order by o.seq
$$;


-- billing.submit (as in sql/0017) with the new command type.
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
     ('open_account', 'credit', 'debit', 'transfer', 'hold', 'capture', 'release',
      'transaction') then
    raise exception 'unknown billing command type: %', coalesce(command_type, 'null')
      using errcode = '22023',
            hint = 'one of open_account, credit, debit, transfer, hold, capture, release, transaction';
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


create or replace function billing.account_history_before(account_id text, before_seq bigint default null, page_size integer default 100)
returns setof billing.operations
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
  -- The same four ways a result names an account as billing.account_history (0011), each read
  -- backwards from before_seq (null: from the end) on its own index.
  select o.*
  from billing.operations as o
  where o.seq in (
    select found.seq from (
      (select seq from billing.operations
       where billing.request_field(request, 'account') = account_id
         and billing.request_field(request, 'account') is not null and seq < coalesce(before_seq, 9223372036854775807)
       order by seq desc limit page_size)
      union
      (select seq from billing.operations
       where billing.request_field(request, 'from') = account_id
         and billing.request_field(request, 'from') is not null and seq < coalesce(before_seq, 9223372036854775807)
       order by seq desc limit page_size)
      union
      (select seq from billing.operations
       where billing.request_field(request, 'to') = account_id
         and billing.request_field(request, 'to') is not null and seq < coalesce(before_seq, 9223372036854775807)
       order by seq desc limit page_size)
      union
      (select by_hold.seq
       from billing.holds as h
       cross join lateral (
         select seq from billing.operations
         where billing.request_field(request, 'hold') = h.hold and type in ('capture', 'release', 'expire')
           and seq < coalesce(before_seq, 9223372036854775807)
         order by seq desc limit page_size) as by_hold
       where h.account = account_id)
    ) as found
    order by found.seq desc
    limit page_size)
  order by o.seq
$$;


create or replace function billing.account_history(account_id text, after_seq bigint default 0, page_size integer default 100)
returns setof billing.operations
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
  select o.*
  from billing.operations as o
  where o.seq in (
    select found.seq from (
      (select seq from billing.operations
       where billing.request_field(request, 'account') = account_id
         and billing.request_field(request, 'account') is not null and seq > after_seq
       order by seq limit page_size)
      union
      (select seq from billing.operations
       where billing.request_field(request, 'from') = account_id
         and billing.request_field(request, 'from') is not null and seq > after_seq
       order by seq limit page_size)
      union
      (select seq from billing.operations
       where billing.request_field(request, 'to') = account_id
         and billing.request_field(request, 'to') is not null and seq > after_seq
       order by seq limit page_size)
      union
      (select by_hold.seq
       from billing.holds as h
       cross join lateral (
         select seq from billing.operations
         where billing.request_field(request, 'hold') = h.hold and type in ('capture', 'release', 'expire') and seq > after_seq
         order by seq limit page_size) as by_hold
       where h.account = account_id)
    ) as found
    order by found.seq
    limit page_size)
  order by o.seq
$$;


drop index billing.operations_accounts;
alter table billing.operations drop column accounts;
alter table billing.operations drop constraint code_known;
alter table billing.operations add constraint code_known check (code in (
  'ok', 'invalid_command', 'account_exists', 'account_not_found', 'same_account', 'currency_mismatch',
  'insufficient_funds', 'overflow', 'hold_exists', 'hold_not_found', 'hold_closed', 'amount_exceeds_hold'));
comment on constraint code_known on billing.operations is
  'The closed list of result codes (src/commands/contract.ts resultCodes, without id_conflict, which writes no row).';
alter table billing.operations drop constraint type_known;
alter table billing.operations add constraint type_known check (type in ('open_account', 'credit', 'debit', 'transfer',
  'hold', 'capture', 'release', 'expire'));
