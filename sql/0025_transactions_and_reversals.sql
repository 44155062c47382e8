-- Up Migration
-- Several moves as one, and corrections (issue 20, items 1 and 2): the `transaction` and `reverse`
-- commands. The closed lists grow (operation types, result codes, billing.submit's command types;
-- test/contract.test.ts compares them with src/commands/), a result names the command it reverses,
-- and what reversals put back of a command is a running total the database bounds.

-- The closed lists, rewritten whole. NOT VALID then VALIDATE: the check of existing rows does not
-- hold a lock that stops the workers' inserts while it reads the table.
alter table billing.operations drop constraint type_known;
alter table billing.operations add constraint type_known check (type in ('open_account', 'credit', 'debit', 'transfer',
  'hold', 'capture', 'release', 'set_limits', 'freeze', 'unfreeze', 'close_account', 'expire', 'transaction',
  'reverse')) not valid;
alter table billing.operations validate constraint type_known;

alter table billing.operations drop constraint code_known;
alter table billing.operations add constraint code_known check (code in (
  'ok', 'invalid_command', 'account_exists', 'account_not_found', 'same_account', 'currency_mismatch',
  'insufficient_funds', 'overflow', 'hold_exists', 'hold_not_found', 'hold_closed', 'amount_exceeds_hold',
  'account_closed', 'account_frozen', 'account_not_empty', 'limit_below_usage', 'limit_exceeded',
  'operation_not_found', 'not_reversible', 'amount_exceeds_remaining')) not valid;
alter table billing.operations validate constraint code_known;
comment on constraint code_known on billing.operations is
  'The closed list of result codes (src/commands/contract.ts resultCodes, without id_conflict, which writes no row).';

-- A reversal's result names the command it reverses (applied or rejected alike), and a command's
-- reversals are one index range: select * from billing.operations where reverses = 'order-42-pay'.
alter table billing.operations add column reverses text,
  add constraint reverses_only_reversals check (reverses is null or type = 'reverse');
create index operations_reverses on billing.operations (reverses, seq) where reverses is not null;
comment on column billing.operations.reverses is
  'For a reverse command: the id of the command it reverses (its `of`); null for every other type.';

-- The accounts a transaction's legs name, or a reversal moves money on: their requests do not
-- name them at the top level, where account history looks (sql/0011), so the result carries them.
alter table billing.operations add column accounts jsonb,
  add constraint accounts_is_array check (accounts is null or jsonb_typeof(accounts) = 'array');
create index operations_accounts on billing.operations using gin (accounts jsonb_path_ops) where accounts is not null;
comment on column billing.operations.accounts is
  'For transaction and reverse: the accounts it names or moves money on, a JSON array of ids (billing.account_history finds them); null for other types.';

-- What reversals have put back of a command, one row per reversed command, added to under the
-- batch's lock of that command's id. The CHECK is the guarantee: no write, whatever its path, makes
-- the reversals of a command add up past what it moved. `total` is a single move's amount; a
-- transaction is reversed whole, once (total 1, reversed 1).
create table billing.reversal_totals (
  operation_id text primary key references billing.operations (id) deferrable initially deferred,
  total bigint not null
    constraint total_positive check (total > 0),
  reversed bigint not null
    constraint reversed_within_total check (reversed > 0 and reversed <= total)
);
comment on table billing.reversal_totals is
  'How much of a command its applied reversals have put back: reversed never exceeds total (CHECK).';
comment on column billing.reversal_totals.operation_id is 'The reversed command (billing.operations.id).';
comment on column billing.reversal_totals.total is 'What reversals can put back in all: the amount of a single move; 1 for a transaction (reversed whole).';
comment on column billing.reversal_totals.reversed is 'What its applied reversals put back so far (a transaction: 1 once reversed).';

do $grants$
declare
  owner_role  text := coalesce(nullif(current_setting('pgbilling.owner_role', true), ''), 'billing_owner');
  worker_role text := coalesce(nullif(current_setting('pgbilling.worker_role', true), ''), 'billing_worker');
  reader_role text := coalesce(nullif(current_setting('pgbilling.reader_role', true), ''), 'billing_reader');
begin
  -- The worker adds to a total (insert, or update of `reversed` on conflict) and never deletes one.
  execute format('grant select, insert on billing.reversal_totals to %I', worker_role);
  execute format('grant update (reversed) on billing.reversal_totals to %I', worker_role);
  execute format('grant select on billing.reversal_totals to %I', reader_role);
  if pg_catalog.pg_has_role(current_user, owner_role, 'MEMBER') then
    execute format('alter table billing.reversal_totals owner to %I', owner_role);
  end if;
end
$grants$;

-- An account's history (sql/0011, 0021) finds transactions and reversals through `accounts`.
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


-- billing.submit (as in sql/0017) with the two new command types.
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
      'transaction', 'reverse', 'set_limits', 'freeze', 'unfreeze', 'close_account') then
    raise exception 'unknown billing command type: %', coalesce(command_type, 'null')
      using errcode = '22023',
            hint = 'one of open_account, credit, debit, transfer, hold, capture, release, transaction, reverse, set_limits, freeze, unfreeze, close_account';
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
     ('open_account', 'credit', 'debit', 'transfer', 'hold', 'capture', 'release', 'set_limits', 'freeze',
      'unfreeze', 'close_account') then
    raise exception 'unknown billing command type: %', coalesce(command_type, 'null')
      using errcode = '22023',
            hint = 'one of open_account, credit, debit, transfer, hold, capture, release, set_limits, freeze, unfreeze, close_account';
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


drop table billing.reversal_totals;
drop index billing.operations_accounts;
drop index billing.operations_reverses;
alter table billing.operations drop column accounts, drop column reverses;
alter table billing.operations drop constraint code_known;
alter table billing.operations add constraint code_known check (code in (
  'ok', 'invalid_command', 'account_exists', 'account_not_found', 'same_account', 'currency_mismatch',
  'insufficient_funds', 'overflow', 'hold_exists', 'hold_not_found', 'hold_closed', 'amount_exceeds_hold',
  'account_closed', 'account_frozen', 'account_not_empty', 'limit_below_usage', 'limit_exceeded'));
comment on constraint code_known on billing.operations is
  'The closed list of result codes (src/commands/contract.ts resultCodes, without id_conflict, which writes no row).';
alter table billing.operations drop constraint type_known;
alter table billing.operations add constraint type_known check (type in ('open_account', 'credit', 'debit', 'transfer',
  'hold', 'capture', 'release', 'set_limits', 'freeze', 'unfreeze', 'close_account', 'expire'));
