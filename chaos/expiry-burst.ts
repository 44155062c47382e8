// Issue 24 item 8, full size: many holds expiring at one instant behind a backlog of ordinary
// commands. Prints how late the expiries were: the hold's closed_at against its expires_at, and
// when a reader saw each expiry committed (chaos/expiry-instant.ts), both by the database clock;
// SPEC: every one within 5 s.
//
//   node chaos/expiry-burst.ts [--holds 20000] [--commands 50000] [--workers 2] [--lead 8] [--keep]
//
// Real worker processes with the deployed V8 limits, on a database of its own (DATABASE_URL's
// server, else 127.0.0.1:5432), dropped at the end. Exit code 1 if any expiry was more than 5 s late.
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { resolveServerUrl } from '../src/db/connection.ts';
import { createBenchDatabase, databaseSeconds } from '../bench/database.ts';
import { deployedMallocArenaMax, deployedNodeOptions, startWorkers } from '../bench/workers.ts';
import { addJobs, commitLateness, moveHoldsToOneInstant, watchCommits } from './expiry-instant.ts';

const { values } = parseArgs({
  options: {
    holds: { type: 'string', default: '20000' },
    commands: { type: 'string', default: '50000' },
    workers: { type: 'string', default: '2' },
    // Seconds from moving the holds to their instant: room to enqueue the backlog before it (the
    // lead doubles while the move cannot commit in time).
    lead: { type: 'string', default: '8' },
    keep: { type: 'boolean', default: false },
  },
});
const holds = Number(values.holds);
const commands = Number(values.commands);
const accounts = 10_000;
/** The backlog becomes runnable this long before the instant: the workers are busy with it by then. */
const backlogAheadMs = 2_000;

const bench = await createBenchDatabase(await resolveServerUrl(), accounts, 'expiry_burst');
const workers = await startWorkers(bench, Number(values.workers), 'real', {
  NODE_OPTIONS: deployedNodeOptions,
  MALLOC_ARENA_MAX: deployedMallocArenaMax,
  LOG_LEVEL: 'warn',
});
try {
  // Holds first, made with one expiry an hour ahead however long that takes on a busy machine.
  await addJobs(
    bench.pool,
    'billing/hold',
    holds,
    `json_build_object('id', 'h' || g, 'account', 'a' || (1 + g % ${accounts - 1}), 'amount', '1',
      'expires_at', to_char((date_trunc('second', now()) + interval '1 hour') at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))`,
  );
  const made = async () =>
    Number((await bench.pool.query<{ n: string }>('select count(*) as n from billing.holds')).rows[0]!.n);
  while ((await made()) < holds) await sleep(200);
  // Then the holds (and their jobs' run_at, by as much) are brought to one instant ahead, and the
  // backlog is enqueued to run from shortly before it: the holds fall due behind the backlog.
  const watch = watchCommits(bench.pool);
  const due = await moveHoldsToOneInstant(bench.pool, Number(values.lead) * 1000);
  const enqueueStarted = await databaseSeconds(bench.pool);
  await addJobs(
    bench.pool,
    'billing/credit',
    commands,
    `json_build_object('id', 'c' || g, 'account', 'a' || (1 + g % ${accounts - 1}), 'amount', '1')`,
    new Date(due.getTime() - backlogAheadMs),
  );
  const enqueued = await databaseSeconds(bench.pool);
  const waiting = async () =>
    Number(
      (
        await bench.pool.query<{ n: string }>(
          "select count(*) as n from billing.holds where status = 'active' or closed_at is null",
        )
      ).rows[0]!.n,
    );
  while ((await waiting()) > 0) await sleep(100);
  await watch.stop();
  const committedLate = (await commitLateness(bench.pool, watch)).sort((a, b) => a - b);
  const {
    rows: [lateness],
  } = await bench.pool.query<{ late: string; max_s: number; p50_s: number; p99_s: number; by_job: string }>(
    `select count(*) filter (where closed_at - expires_at > interval '5 s') as late,
            extract(epoch from max(closed_at - expires_at))::float8 as max_s,
            extract(epoch from percentile_cont(0.5) within group (order by closed_at - expires_at))::float8 as p50_s,
            extract(epoch from percentile_cont(0.99) within group (order by closed_at - expires_at))::float8 as p99_s,
            (select count(*) from billing.operations where type = 'expire' and job_id is not null) as by_job
     from billing.holds`,
  );
  const {
    rows: [backlog],
  } = await bench.pool.query<{ before: string; after: string }>(
    `select count(*) filter (where created_at <= $1::timestamptz) as before,
            count(*) filter (where created_at > $1::timestamptz) as after
     from billing.operations where type = 'credit' and id ~ '^c[0-9]+$'`,
    [due],
  );
  const dueSeconds = due.getTime() / 1000;
  console.log(
    `${holds} holds due at one instant; ${commands} credits enqueued from ${(dueSeconds - enqueueStarted).toFixed(1)} s to ${(dueSeconds - enqueued).toFixed(1)} s before it, runnable from ${backlogAheadMs / 1000} s before it`,
  );
  console.log(
    `credits waiting at the instant: ${commands - Number(backlog!.before)}; committed after it by the last expiry: ${backlog!.after}`,
  );
  console.log(
    `closed (holds.closed_at) more than 5 s late: ${lateness!.late}; p50 ${lateness!.p50_s.toFixed(2)} s, p99 ${lateness!.p99_s.toFixed(2)} s, max ${lateness!.max_s.toFixed(2)} s (${lateness!.by_job} by their job, the rest by the sweeper)`,
  );
  const { rows: timeline } = await bench.pool.query<{ s: number; n: string }>(
    `select ceil(extract(epoch from closed_at - expires_at))::int as s, count(*) as n
     from billing.holds group by 1 order by 1`,
  );
  console.log(`closed within (s after due): ${timeline.map((r) => `${r.s}: ${r.n}`).join(', ')}`);
  const overBound = committedLate.filter((ms) => ms > 5_000).length;
  const at = (q: number) =>
    (committedLate[Math.min(committedLate.length - 1, Math.floor(q * committedLate.length))]! / 1000).toFixed(2);
  console.log(
    `committed (seen by a reader every 50 ms: an upper bound) more than 5 s late: ${overBound}; p50 ${at(0.5)} s, p99 ${at(0.99)} s, max ${at(1)} s`,
  );
  process.exitCode = Number(lateness!.late) > 0 || overBound > 0 ? 1 : 0;
} finally {
  await workers.stop();
  if (values.keep) {
    console.log(`kept database ${bench.name}`);
    await bench.pool.end();
  } else await bench.drop();
}
