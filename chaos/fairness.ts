// Issue 24 item 11, full size: one login sends a burst of billing.submit in one statement, another
// login one command right after it. Prints how long the lone command took from its enqueue to its
// result (database clock) and how many of the burst's commands were answered before it; SPEC 8: a
// burst from one login delays another login's command by at most 1 s.
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
try {
  const burstStarted = Date.now();
  await a.query(
    `select count(billing.submit('transfer', json_build_object('id', 'burst-' || g,
       'from', 'a' || (1 + g % ${accounts - 1}), 'to', 'a' || (1 + (g + 1) % ${accounts - 1}), 'amount', '1')))
     from generate_series(1, $1::int) g`,
    [burst],
  );
  const burstSeconds = (Date.now() - burstStarted) / 1000;
  const {
    rows: [lone],
  } = await b.query<{ enqueued: Date }>(
    `select clock_timestamp() as enqueued,
            billing.submit('transfer', '{"id": "lone", "from": "a1", "to": "a2", "amount": "1"}') as job`,
  );
  let result: { seq: string; created_at: Date; delay_s: number } | undefined;
  while (!result) {
    ({
      rows: [result],
    } = await bench.pool.query<{ seq: string; created_at: Date; delay_s: number }>(
      `select seq::text, created_at, extract(epoch from created_at - $1::timestamptz)::float8 as delay_s
       from billing.operations where id = 'lone'`,
      [lone!.enqueued],
    ));
    if (!result) await sleep(20);
  }
  const {
    rows: [ahead],
  } = await bench.pool.query<{ before: string; after: string }>(
    `select count(*) filter (where seq < $1) as before, count(*) filter (where seq > $1) as after
     from billing.operations where id like 'burst-%'`,
    [result.seq],
  );
  console.log(
    `login A enqueued ${burst} transfers in one statement (${burstSeconds.toFixed(1)} s); login B one right after`,
  );
  console.log(
    `B's result came ${result.delay_s.toFixed(2)} s after its enqueue (database clock), after ${ahead!.before} of A's commands (${ahead!.after} of them answered later by then)`,
  );
  process.exitCode = result.delay_s > 1 ? 1 : 0;
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
