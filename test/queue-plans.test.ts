import pg from 'pg';
import t from 'tap';
import { Logger, run } from 'graphile-worker';
import { loadConfig } from '../src/config.ts';
import { queueSettings } from '../src/worker/queue-settings.ts';
import { workerSessionOptions } from '../src/worker/runtime.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { waitFor } from './helpers/wait.ts';
import { enqueueMany } from './helpers/ledger.ts';

// graphile-worker fetches jobs with a named prepared statement. Run on a quiet queue, PostgreSQL
// switches it to a generic plan made for an empty jobs table and keeps that plan when the queue
// fills: a nested loop comparing every job row with every fetched one, 3-16 s per fetch of 1,200
// in the bench (bench/LOG.md). The queue pool's sessions must plan each fetch afresh.

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Join Filter'?: string;
  Plans?: PlanNode[];
}

/** Nested loops that scan the whole jobs table and filter the pairs: jobs x fetched rows. */
function jobsTimesRows(node: PlanNode): PlanNode[] {
  const here =
    node['Node Type'] === 'Nested Loop' &&
    node['Join Filter'] !== undefined &&
    (node.Plans ?? []).some((child) => child['Node Type'] === 'Seq Scan' && child['Relation Name'] === '_private_jobs')
      ? [node]
      : [];
  return [...here, ...(node.Plans ?? []).flatMap(jobsTimesRows)];
}

function seqScansOfJobs(node: PlanNode): PlanNode[] {
  const here = node['Node Type'] === 'Seq Scan' && node['Relation Name'] === '_private_jobs' ? [node] : [];
  return [...here, ...(node.Plans ?? []).flatMap(seqScansOfJobs)];
}

/**
 * Lets graphile-worker poll an empty queue on `pool` until its fetch has run `fetches` times, then
 * fills the queue with 20,000 jobs and returns the plan that the runner's own session now uses for
 * its fetch statement (EXPLAIN EXECUTE of that prepared statement, in that session).
 */
async function fetchPlanAfterQuietQueue(database: TestDatabase, pool: pg.Pool, fetches: number) {
  let fetched = 0;
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as { query: unknown }).query = (...args: unknown[]) => {
      const config = args[0] as { name?: string } | undefined;
      if (config?.name?.startsWith('get_job')) fetched += 1;
      return query(...args);
    };
  });
  const settings = queueSettings({ ...loadConfig({}), databaseUrl: database.url, concurrency: 4 });
  const runner = await run({
    pgPool: pool,
    concurrency: 4,
    taskList: { 'plans/noop': async () => {} },
    noHandleSignals: true,
    logger: new Logger(() => () => {}),
    // Polls every 10 ms: graphile-worker refuses a refetch delay longer than the poll interval.
    preset: { worker: { ...settings.preset.worker, pollInterval: 10, localQueue: { size: settings.fetchSize } } },
  });
  await waitFor(`${fetches} fetches on the empty queue`, () => (fetched >= fetches ? true : undefined));
  await runner.stop();
  await enqueueMany(database, 'plans/noop', 20_000, `json_build_object('n', g)`);
  // The runner's idle sessions are still in the pool: find the one that prepared the fetch.
  const clients = await Promise.all(Array.from({ length: pool.totalCount }, () => pool.connect()));
  try {
    for (const client of clients) {
      const { rows } = await client.query<{ name: string; generic_plans: string }>(
        `select name, generic_plans from pg_prepared_statements where name like 'get_job%'`,
      );
      const statement = rows[0];
      if (!statement) continue;
      const { rows: tasks } = await client.query<{ id: number }>(
        `select id from graphile_worker._private_tasks where identifier = 'plans/noop'`,
      );
      const { rows: explained } = await client.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(
        `explain (format json) execute ${pg.escapeIdentifier(statement.name)}('pool-x', array[${tasks[0]!.id}])`,
      );
      return { plan: explained[0]!['QUERY PLAN'][0].Plan, genericPlans: Number(statement.generic_plans) };
    }
    throw new Error('no session of the pool prepared the fetch statement');
  } finally {
    for (const client of clients) client.release();
  }
}

t.test('the queue pool plans each fetch for the jobs table as it is now', async (t) => {
  const config = { ...loadConfig({}), concurrency: 4 };

  const control = await createTestDatabase('queue-plans-control');
  t.teardown(() => control.drop());
  await control.query('vacuum analyze graphile_worker._private_jobs');
  const withCachedPlans = new pg.Pool({
    ...queueSettings({ ...config, databaseUrl: control.url }).pool,
    options: workerSessionOptions(config),
  });
  // pool.end() resolves before its connections have closed, and the database is then dropped with
  // force: a connection still closing gets that termination, which an idle client hands to its pool
  // as an 'error' event (pg-pool). Expected here, as on the service's pools (src/db/pool.ts).
  withCachedPlans.on('error', () => {});
  t.teardown(() => withCachedPlans.end());
  const cached = await fetchPlanAfterQuietQueue(control, withCachedPlans, 12);
  t.ok(cached.genericPlans > 0, 'without the setting, the fetch went to a generic plan');
  // What that generic plan looks like once the queue has filled is not asserted: PostgreSQL drops
  // cached plans when its shared invalidation queue overflows (other databases' DDL, as in a
  // parallel test run), and the plan made afresh then knows the 20,000 jobs. Alone, it is the
  // jobs x rows loop of the bench's stalls.
  t.comment(`the cached plan without the setting: ${jobsTimesRows(cached.plan).length} jobs x rows loop(s)`);

  const database = await createTestDatabase('queue-plans');
  t.teardown(() => database.drop());
  await database.query('vacuum analyze graphile_worker._private_jobs');
  const queuePool = new pg.Pool(queueSettings({ ...config, databaseUrl: database.url }).pool);
  queuePool.on('error', () => {});
  t.teardown(() => queuePool.end());
  const custom = await fetchPlanAfterQuietQueue(database, queuePool, 12);
  t.equal(custom.genericPlans, 0, "the service's queue pool never uses a generic plan for the fetch");
  t.same(jobsTimesRows(custom.plan), [], 'and its plan for 20,000 queued jobs has no jobs x rows loop');
  t.same(
    seqScansOfJobs(custom.plan),
    [],
    'nor a scan (and sort) of every queued job: the fetch walks jobs_main_index in order',
  );
});
