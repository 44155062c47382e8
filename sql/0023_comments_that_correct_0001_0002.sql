-- Up Migration
-- Released migrations are never edited, and two of them now mislead where they are read: sql/0001
-- says results take their seq under an advisory lock, sql/0002 names a file that no longer exists
-- and advisory locks that sql/0008 replaced. The database says once how it is now.
comment on table billing.operations is 'One result per command id, applied or rejected. Read new results with: where seq > $cursor order by seq. A batch inserts its results under the row lock of billing.result_seq_lock (FOR UPDATE, held to commit; not an advisory lock, as sql/0001 says), so seq order is commit order.';
comment on table billing.worker_liveness is 'The graphile-worker ids of live workers, each with the session that registered it: an id whose session is gone from pg_stat_activity belongs to a dead worker, and its jobs are handed back. Registered by src/worker/recovery/registration.ts and read by src/worker/recovery/reaper.ts; no advisory lock is involved (sql/0002''s src/worker/dead-worker-recovery.ts and its locks were replaced by sql/0008).';

-- Down Migration
comment on table billing.operations is 'One result per command id, applied or rejected. Read new results with: where seq > $cursor order by seq.';
comment on table billing.worker_liveness is 'The graphile-worker ids of live workers, each with the session that registered it: an id whose session is gone from pg_stat_activity belongs to a dead worker, and its jobs are handed back.';
