-- Up Migration
-- For psql scripts and DBAs: wait for a command's result without writing a polling loop. Called
-- as a statement of its own (autocommit): in READ COMMITTED every loop turn sees new commits.
create function billing.await_result(command_id text, timeout_seconds double precision default 10)
returns setof billing.operations
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  deadline timestamptz := clock_timestamp() + make_interval(secs => timeout_seconds);
begin
  loop
    return query select * from billing.operations as o where o.id = command_id;
    if found then
      return;
    end if;
    if clock_timestamp() >= deadline then
      raise exception 'no result for command % after % seconds', command_id, timeout_seconds
        using errcode = '57014',
              hint = 'is a worker running? see graphile_worker.jobs for the job';
    end if;
    perform pg_sleep(0.01);
  end loop;
end;
$$;

comment on function billing.await_result(text, double precision) is
  'Waits (up to timeout_seconds) for the result row of a command id and returns it.';

-- Down Migration
drop function billing.await_result(text, double precision);
