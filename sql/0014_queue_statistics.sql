-- Up Migration
-- graphile-worker's fetch is planned from the statistics of its jobs table. Taken while the queue
-- was empty (a quiet moment, or a VACUUM that removed every row but could not truncate the file),
-- they say the table is empty for as long as they last, however much it fills: the fetch then
-- compares every fetched row with every job, seconds per fetch (docs/performance.md). Autovacuum
-- analyzes again only after enough rows have changed, at its own pace, and may be off. A worker
-- whose fetch came back full calls this with the number it got; ANALYZE runs (as the table's
-- owner) only when the statistics count fewer jobs than half of that.
create function billing.refresh_queue_statistics(jobs_seen bigint)
returns boolean
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if (select c.reltuples from pg_class as c where c.oid = 'graphile_worker._private_jobs'::regclass) >= jobs_seen / 2 then
    return false;
  end if;
  analyze graphile_worker._private_jobs;
  return true;
end;
$$;

do $grants$
declare
  worker_role text := coalesce(nullif(current_setting('pgbilling.worker_role', true), ''), 'billing_worker');
begin
  execute 'revoke execute on function billing.refresh_queue_statistics(bigint) from public';
  execute format('grant execute on function billing.refresh_queue_statistics(bigint) to %I', worker_role);
end
$grants$;

-- Down Migration
drop function billing.refresh_queue_statistics(bigint);
