-- Up Migration
-- Account policies (issue 20, item 3; SPEC 2.1): an overdraft, a ceiling and a status per account,
-- changed only by the commands set_limits, freeze, unfreeze and close_account, so that a change
-- takes its place in seq order like any other command. The database keeps each rule on the
-- account's own columns, as it kept "never negative" (which is the default: no overdraft):
-- available >= -overdraft_limit, balance <= max_balance, held >= 0, and a closed account is empty.
-- Every existing account becomes open, with no overdraft and no ceiling: the rules it lived under.
alter table billing.accounts
  add column overdraft_limit bigint not null default 0
    constraint overdraft_limit_not_negative check (overdraft_limit >= 0),
  add column max_balance bigint
    constraint max_balance_not_negative check (max_balance >= 0),
  add column status text not null default 'open'
    constraint status_known check (status in ('open', 'frozen', 'closed'));

alter table billing.accounts
  drop constraint available_not_negative,
  add constraint available_within_overdraft check (balance - held >= -overdraft_limit),
  add constraint balance_within_max check (max_balance is null or balance <= max_balance),
  add constraint closed_is_empty check (status <> 'closed' or (balance = 0 and held = 0));

-- Each journal entry carries the limits it was written under, so that every entry can be checked
-- on its own row (a limit may be raised, used, and lowered again later): the CHECK that kept an
-- entry from going negative now keeps it within its overdraft and its ceiling. Entries written
-- before this migration were written under no overdraft and no ceiling.
alter table billing.entries
  add column overdraft_limit bigint not null default 0,
  add column max_balance bigint;
alter table billing.entries
  drop constraint entry_after_not_negative,
  add constraint entry_within_limits check (
    held_after >= 0 and overdraft_limit >= 0 and balance_after - held_after >= -overdraft_limit
    and (max_balance is null or balance_after <= max_balance));

do $grants$
declare
  worker_role text := coalesce(nullif(current_setting('pgbilling.worker_role', true), ''), 'billing_worker');
begin
  -- The policy commands are the worker's to apply, as balances are; nothing else of the row.
  execute format('grant update (overdraft_limit, max_balance, status) on billing.accounts to %I', worker_role);
end
$grants$;

-- The closed lists grow (test/contract.test.ts compares them with src/commands/).
alter table billing.operations drop constraint type_known;
alter table billing.operations add constraint type_known check (type in ('open_account', 'credit', 'debit',
  'transfer', 'hold', 'capture', 'release', 'set_limits', 'freeze', 'unfreeze', 'close_account', 'expire'));
alter table billing.operations drop constraint code_known;
alter table billing.operations add constraint code_known check (code in (
  'ok', 'invalid_command', 'account_exists', 'account_not_found', 'same_account', 'currency_mismatch',
  'insufficient_funds', 'overflow', 'hold_exists', 'hold_not_found', 'hold_closed', 'amount_exceeds_hold',
  'account_closed', 'account_frozen', 'account_not_empty', 'limit_below_usage', 'limit_exceeded'));
comment on constraint code_known on billing.operations is
  'The closed list of result codes (src/commands/contract.ts resultCodes, without id_conflict, which writes no row).';

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

comment on table billing.accounts is 'One row per account: what it owns (balance), what active holds reserve (held), available = balance - held, and its policy (overdraft_limit, max_balance, status). Only workers change it.';
comment on column billing.accounts.available is 'balance - held (generated); never below -overdraft_limit: debit, transfer and hold need available + overdraft_limit >= amount.';
comment on column billing.accounts.updated_at is 'When a command last changed balance, held or the policy.';
comment on column billing.accounts.overdraft_limit is 'How far below zero available may go (set_limits); 0, the default, means never negative.';
comment on column billing.accounts.max_balance is 'The ceiling of balance (set_limits): no command leaves balance above it (limit_exceeded); null: none.';
comment on column billing.accounts.status is 'open; frozen (no money out: freeze/unfreeze); or closed (close_account, empty, never reopened: every command naming it ends account_closed).';
comment on column billing.entries.overdraft_limit is 'The account''s overdraft_limit when this change was made: balance_after - held_after >= -overdraft_limit.';
comment on column billing.entries.max_balance is 'The account''s max_balance when this change was made (null: none): balance_after <= max_balance.';
comment on column billing.operations.type is 'open_account, credit, debit, transfer, hold, capture, release, set_limits, freeze, unfreeze, close_account, or expire (the service''s own hold expiry).';

-- Down Migration
-- Refused, as it should be, while an account uses an overdraft or an entry was written in one
-- (available_not_negative and entry_after_not_negative would not hold), or while a result of a
-- policy command exists (type_known) or a result carries one of the new codes (code_known).
comment on column billing.operations.type is 'open_account, credit, debit, transfer, hold, capture, release, or expire (the service''s own hold expiry).';
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
alter table billing.operations drop constraint code_known;
alter table billing.operations add constraint code_known check (code in (
  'ok', 'invalid_command', 'account_exists', 'account_not_found', 'same_account', 'currency_mismatch',
  'insufficient_funds', 'overflow', 'hold_exists', 'hold_not_found', 'hold_closed', 'amount_exceeds_hold'));
comment on constraint code_known on billing.operations is
  'The closed list of result codes (src/commands/contract.ts resultCodes, without id_conflict, which writes no row).';
alter table billing.operations drop constraint type_known;
alter table billing.operations add constraint type_known check (type in ('open_account', 'credit', 'debit', 'transfer', 'hold',
                                                                     'capture', 'release', 'expire'));
alter table billing.entries
  drop constraint entry_within_limits,
  add constraint entry_after_not_negative check (held_after >= 0 and balance_after - held_after >= 0);
alter table billing.entries drop column max_balance, drop column overdraft_limit;
alter table billing.accounts
  drop constraint closed_is_empty,
  drop constraint balance_within_max,
  drop constraint available_within_overdraft,
  add constraint available_not_negative check (balance - held >= 0);
alter table billing.accounts drop column status, drop column max_balance, drop column overdraft_limit;
comment on table billing.accounts is 'One row per account: what it owns (balance), what active holds reserve (held), and available = balance - held. Only workers change it.';
comment on column billing.accounts.available is 'balance - held (generated); never negative: debit, transfer and hold need available >= amount.';
comment on column billing.accounts.updated_at is 'When a command last changed balance or held.';
