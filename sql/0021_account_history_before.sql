-- Up Migration
-- An account's history read backwards: the page of results just before a seq, or the newest page.
-- `billing history <account>` shows the newest results by default (what a reader of an account
-- wants first) and pages back from there; billing.account_history pages forward from a seq.
create function billing.account_history_before(account_id text, before_seq bigint default null, page_size integer default 100)
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

comment on function billing.account_history_before(text, bigint, integer) is
  'billing.account_history_before(account_id, before_seq default null, page_size default 100): the results '
  '(billing.operations rows, applied or rejected) of the commands that named this account or one of its holds, '
  'those with seq < before_seq (null: the newest), at most page_size, in seq order. Previous page: '
  'before_seq => the first seq returned.';

do $grants$
declare
  owner_role  text := coalesce(nullif(current_setting('pgbilling.owner_role', true), ''), 'billing_owner');
  client_role text := coalesce(nullif(current_setting('pgbilling.client_role', true), ''), 'billing_client');
  reader_role text := coalesce(nullif(current_setting('pgbilling.reader_role', true), ''), 'billing_reader');
begin
  -- As billing.account_history since 0019: PUBLIC runs nothing of ours, the client and the reader do.
  execute 'revoke execute on function billing.account_history_before(text, bigint, integer) from public';
  execute format('grant execute on function billing.account_history_before(text, bigint, integer) to %I, %I',
                 client_role, reader_role);
  -- Owned by the owner role as billing.account_history is (0011): the SECURITY DEFINER function
  -- then carries no superuser power when a superuser migrates.
  if pg_catalog.pg_has_role(current_user, owner_role, 'MEMBER') then
    execute format('alter function billing.account_history_before(text, bigint, integer) owner to %I', owner_role);
  end if;
end
$grants$;

-- Down Migration
drop function billing.account_history_before(text, bigint, integer);
