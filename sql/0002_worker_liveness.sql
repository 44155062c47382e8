-- Up Migration
-- Worker liveness for dead-worker recovery (src/worker/dead-worker-recovery.ts). Each worker
-- process registers the ids it locks jobs with (graphile-worker's locked_by) and holds a
-- session-level advisory lock per id for as long as it lives. A reaper that can take such a lock
-- knows the process is gone and hands its jobs back with graphile_worker.force_unlock_workers.
create table billing.worker_liveness (
  id text primary key,            -- a graphile-worker locked_by value (pool-... or worker-...)
  lock_key int4 not null,         -- livenessLockKey(id), under advisory lock class 0x62696c76
  backend_pid int4 not null,      -- the registration session, to find it in pg_stat_activity
  os_pid int4 not null,
  host text not null,
  registered_at timestamptz not null default now()
);

-- Down Migration
drop table billing.worker_liveness;
