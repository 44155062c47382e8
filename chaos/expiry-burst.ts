// Issue 24 item 8, full size: many holds expiring at one instant behind a backlog of ordinary
// commands. Prints how late the expiries committed (the hold's closed_at against its expires_at,
// both from the database clock); SPEC: every one within 5 s.
//
//   node chaos/expiry-burst.ts [--holds 20000] [--commands 50000] [--workers 2]
//
// Real worker processes with the deployed V8 limits, on a database of its own (DATABASE_URL's
// server, else 127.0.0.1:5432), dropped at the end.
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { resolveServerUrl } from '../src/db/connection.ts';
import { createBenchDatabase, databaseSeconds } from '../bench/database.ts';
import { deployedMallocArenaMax, deployedNodeOptions, startWorkers } from '../bench/workers.ts';

const { values } = parseArgs({
  options: {
    holds: { type: 'string', default: '20000' },
    commands: { type: 'string', default: '50000' },
    workers: { type: 'string', default: '2' },
    keep: { type: 'boolean', default: false },
  },
});
const holds = Number(values.holds);
const commands = Number(values.commands);
const accounts = 10_000;
const chunk = 10_000;

const bench = await createBenchDatabase(await resolveServerUrl(), accounts, 'expiry_burst');
const workers = await startWorkers(bench, Number(values.workers), 'real', {
  NODE_OPTIONS: deployedNodeOptions,
  MALLOC_ARENA_MAX: deployedMallocArenaMax,
  LOG_LEVEL: 'warn',
});
try {
  const addJobs = (task: string, count: number, payload: string, from: number) =>
    bench.pool.query(
      `select count(*) from graphile_worker.add_jobs(array(
         select row($1::text, ${payload}, null, null, null, null, null, null)::graphile_worker.job_spec
         from generate_series($2::int, $3::int) g))`,
      [task, from, from + count - 1],
    );
  // Holds first, made with one expiry an hour ahead however long that takes on a busy machine.
  for (let from = 1; from <= holds; from += chunk) {
    await addJobs(
      'billing/hold',
      Math.min(chunk, holds - from + 1),
      `json_build_object('id', 'h' || g, 'account', 'a' || (1 + g % ${accounts - 1}), 'amount', '1',
        'expires_at', to_char((date_trunc('second', now()) + interval '1 hour') at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))`,
      from,
    );
  }
  const made = async () =>
    Number((await bench.pool.query<{ n: string }>('select count(*) as n from billing.holds')).rows[0]!.n);
  while ((await made()) < holds) await sleep(200);
  // Then the backlog, and then the holds (and their jobs' run_at, by as much) are brought to one
  // instant a second ahead: they fall due behind the backlog.
  const enqueueStarted = await databaseSeconds(bench.pool);
  for (let from = 1; from <= commands; from += chunk) {
    await addJobs(
      'billing/credit',
      Math.min(chunk, commands - from + 1),
      `json_build_object('id', 'c' || g, 'account', 'a' || (1 + g % ${accounts - 1}), 'amount', '1')`,
      from,
    );
  }
  const enqueued = await databaseSeconds(bench.pool);
  const { rows } = await bench.pool.query<{ due: Date }>(
    `with instant as (select now() + interval '1 s' as due),
     moved as (
       update graphile_worker._private_jobs as j set run_at = j.run_at - (h.expires_at - instant.due)
       from billing.holds as h, instant where j.key = 'expire:' || h.hold)
     update billing.holds set expires_at = instant.due from instant returning instant.due`,
  );
  const due = rows[0]!.due;
  const waiting = async () =>
    Number(
      (
        await bench.pool.query<{ n: string }>(
          "select count(*) as n from billing.holds where status = 'active' or closed_at is null",
        )
      ).rows[0]!.n,
    );
  while ((await waiting()) > 0) await sleep(500);
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
     from billing.operations where type = 'credit'`,
    [due],
  );
  console.log(
    `${holds} holds due at one instant, ${commands} credits enqueued ${(due.getTime() / 1000 - enqueueStarted).toFixed(1)} s before it (in ${(enqueued - enqueueStarted).toFixed(1)} s)`,
  );
  console.log(
    `credits waiting at the instant: ${commands - Number(backlog!.before)}; committed after it by the last expiry: ${backlog!.after}`,
  );
  console.log(
    `expiries more than 5 s late: ${lateness!.late}; lateness p50 ${lateness!.p50_s.toFixed(2)} s, p99 ${lateness!.p99_s.toFixed(2)} s, max ${lateness!.max_s.toFixed(2)} s (${lateness!.by_job} by their job, the rest by the sweeper)`,
  );
  const { rows: timeline } = await bench.pool.query<{ s: number; n: string }>(
    `select ceil(extract(epoch from closed_at - expires_at))::int as s, count(*) as n
     from billing.holds group by 1 order by 1`,
  );
  console.log(`expired within (s after due): ${timeline.map((r) => `${r.s}: ${r.n}`).join(', ')}`);
  process.exitCode = Number(lateness!.late) > 0 ? 1 : 0;
} finally {
  await workers.stop();
  if (values.keep) {
    console.log(`kept database ${bench.name}`);
    await bench.pool.end();
  } else await bench.drop();
}
