// Issue 24 item 11, full size: one login (A) sends a burst of billing.submit in one statement,
// another login (B) one command right after it, and one more once the workers are busy with the
// burst. SPEC 8: a burst from one login delays another login's command by at most 1 s. Prints, for
// each of B's commands, its delay from enqueue to result (database clock), when a worker fetched
// it, and how many of A's commands were answered meanwhile; then how fast A's burst was answered
// (the throughput the fairness must not cost). Exit 1 if a delay was over 1 s.
//
//   node chaos/fairness.ts [--burst 100000] [--workers 2]
//
// Real worker processes with the deployed V8 limits, running while the burst is enqueued, on a
// database of its own (DATABASE_URL's server, else 127.0.0.1:5432), dropped at the end with its logins.
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { resolveServerUrl } from '../src/db/connection.ts';
import { roleNamesFromEnv } from '../src/db/migrate.ts';
import { createBenchDatabase } from '../bench/database.ts';
import { deployedMallocArenaMax, deployedNodeOptions, startWorkers } from '../bench/workers.ts';

const { values } = parseArgs({
  options: {
    burst: { type: 'string', default: '100000' },
    workers: { type: 'string', default: '2' },
  },
});
const burst = Number(values.burst);
const accounts = 10_000;

const bench = await createBenchDatabase(await resolveServerUrl(), accounts, 'fairness');
const users = { a: `pgb_chaos_fair_a_${process.pid}`, b: `pgb_chaos_fair_b_${process.pid}` };
for (const user of Object.values(users)) {
  await bench.pool.query(`drop user if exists ${user}`);
  await bench.pool.query(`create user ${user} in role ${roleNamesFromEnv().client}`);
}
const connectAs = async (user: string) => {
  const url = new URL(bench.url);
  url.username = user;
  url.password = '';
  const session = new pg.Client({ connectionString: url.toString() });
  await session.connect();
  return session;
};
const a = await connectAs(users.a);
const b = await connectAs(users.b);
const workers = await startWorkers(bench, Number(values.workers), 'real', {
  NODE_OPTIONS: deployedNodeOptions,
  MALLOC_ARENA_MAX: deployedMallocArenaMax,
  LOG_LEVEL: 'warn',
});
/**
 * B's one command: submitted now, then followed in the database (the job's locked_at: fetched; the
 * result's created_at: applied). Prints the figures; returns the delay from enqueue to result, in s.
 */
async function lone(id: string, when: string): Promise<number> {
  const {
    rows: [sent],
  } = await b.query<{ enqueued: Date; job: string; answered: string }>(
    `select clock_timestamp() as enqueued,
            (select count(*) from billing.operations where id like 'burst-%')::text as answered,
            billing.submit('transfer', json_build_object('id', $1::text, 'from', 'a1', 'to', 'a2', 'amount', '1')) as job`,
    [id],
  );
  let fetched: { at: Date; answered: string } | undefined;
  for (;;) {
    const {
      rows: [row],
    } = await bench.pool.query<{
      locked_at: Date | null;
      applied_at: Date | null;
      seq: string | null;
      answered: string;
    }>(
      `select (select locked_at from graphile_worker._private_jobs where id = $1) as locked_at,
              o.created_at as applied_at, o.seq::text as seq,
              (select count(*) from billing.operations where id like 'burst-%')::text as answered
       from (select) as one left join billing.operations as o on o.id = $2`,
      [sent!.job, id],
    );
    if (!fetched && row!.locked_at) fetched = { at: row!.locked_at, answered: row!.answered };
    if (row!.applied_at) {
      const {
        rows: [ahead],
      } = await bench.pool.query<{ n: string }>(
        "select count(*) as n from billing.operations where id like 'burst-%' and seq < $1",
        [row!.seq],
      );
      const seconds = (at: Date, from: Date) => ((at.getTime() - from.getTime()) / 1000).toFixed(2);
      const delay = (row!.applied_at.getTime() - sent!.enqueued.getTime()) / 1000;
      console.log(
        `login B, ${when}: result ${delay.toFixed(2)} s after its enqueue (database clock); ` +
          `A's answered at its enqueue ${sent!.answered}, at its result ${ahead!.n}` +
          (fetched
            ? `; fetched after ${seconds(fetched.at, sent!.enqueued)} s (A's answered ${fetched.answered}), applied ${seconds(row!.applied_at, fetched.at)} s after that`
            : ''),
      );
      return delay;
    }
    await sleep(10);
  }
}

try {
  // Warm workers first (connections opened, statements prepared, both workers fetching): a
  // worker's first batch after its start is slow on its own, which is not what this measures.
  await a.query(
    `select count(billing.submit('transfer', json_build_object('id', 'warm-' || g, 'from', 'a' || (1 + g % 100),
       'to', 'a' || (1 + (g + 1) % 100), 'amount', '1'))) from generate_series(1, 3000) g`,
  );
  while (
    Number(
      (await bench.pool.query<{ n: string }>("select count(*) as n from billing.operations where id like 'warm-%'"))
        .rows[0]!.n,
    ) < 3000
  )
    await sleep(100);
  const burstStarted = Date.now();
  await a.query(
    `select count(billing.submit('transfer', json_build_object('id', 'burst-' || g,
       'from', 'a' || (1 + g % ${accounts - 1}), 'to', 'a' || (1 + (g + 1) % ${accounts - 1}), 'amount', '1')))
     from generate_series(1, $1::int) g`,
    [burst],
  );
  const burstCommitted = Date.now();
  console.log(
    `login A enqueued ${burst} transfers in one statement (${((burstCommitted - burstStarted) / 1000).toFixed(1)} s, ${Math.round(burst / ((burstCommitted - burstStarted) / 1000))}/s)`,
  );
  const answered = async () =>
    Number(
      (await bench.pool.query<{ n: string }>("select count(*) as n from billing.operations where id like 'burst-%'"))
        .rows[0]!.n,
    );
  const delays = [await lone('lone-1', 'right after the burst committed')];
  // The harder case: the workers already hold fetched jobs of A's when B's command arrives.
  while ((await answered()) < Math.min(1_000, burst / 10)) await sleep(20);
  delays.push(await lone('lone-2', `while the workers were on A's burst`));
  let done = await answered();
  while (done < burst) {
    await sleep(100);
    done = await answered();
  }
  const drainSeconds = (Date.now() - burstCommitted) / 1000;
  console.log(
    `A's ${burst} answered ${drainSeconds.toFixed(1)} s after the burst committed: ${Math.round(burst / drainSeconds)}/s`,
  );
  process.exitCode = delays.some((delay) => delay > 1) ? 1 : 0;
} finally {
  await workers.stop();
  await a.end();
  await b.end();
  await bench.drop();
  const admin = new pg.Client({ connectionString: await resolveServerUrl() });
  await admin.connect();
  for (const user of Object.values(users)) await admin.query(`drop user if exists ${user}`);
  await admin.end();
}
