import t from 'tap';
import { holdExpiry } from '../src/commands/contract.ts';
import { retryFailedExpiriesStatement } from '../src/worker/recovery/expiry-retries.ts';
import { unlockJobsSkippingLocked, unlockQueuesSkippingLocked } from '../src/worker/recovery/reaper.ts';
import { createTestDatabase } from './helpers/database.ts';
import { enqueueMany } from './helpers/ledger.ts';

// The recovery statements run every pass, on a jobs table whose statistics may be from a moment it
// was empty (ANALYZE on a quiet queue; autovacuum off on this project's test server). With such
// statistics, an `update ... from (select ... for update skip locked) as x where id = x.id` was
// planned as a nested loop that rescanned the table once per row: 30 s per pass with 37,000 jobs
// queued (bench/LOG.md). Their plans must not depend on that: the locked ids come from a
// subquery run once, and the update finds them by index.

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  Plans?: PlanNode[];
}

function relationsUnder(node: PlanNode): string[] {
  return [...(node['Relation Name'] ? [node['Relation Name']] : []), ...(node.Plans ?? []).flatMap(relationsUnder)];
}

/** Nested loops that scan the jobs table on both sides: one scan of it per row of the other. */
function jobsTimesJobs(node: PlanNode): PlanNode[] {
  const here =
    node['Node Type'] === 'Nested Loop' && relationsUnder(node).filter((r) => r === '_private_jobs').length >= 2
      ? [node]
      : [];
  return [...here, ...(node.Plans ?? []).flatMap(jobsTimesJobs)];
}

t.test('recovery statements keep a plan linear in the queue under statistics of an empty queue', async (t) => {
  const database = await createTestDatabase('recovery-plans');
  t.teardown(() => database.drop());
  await database.query('vacuum analyze graphile_worker._private_jobs');
  await enqueueMany(database, 'billing/credit', 20_000);
  const { rows: stats } = await database.query<{ reltuples: number }>(
    `select reltuples from pg_class where oid = 'graphile_worker._private_jobs'::regclass`,
  );
  t.equal(stats[0]?.reltuples, 0, 'the statistics still say the jobs table is empty');

  const plan = async (text: string, values: unknown[]) => {
    const { rows } = await database.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(
      `explain (format json) ${text}`,
      values,
    );
    return rows[0]!['QUERY PLAN'][0].Plan;
  };
  const joined = await plan(
    `update graphile_worker._private_jobs as jobs set locked_at = null, locked_by = null
     from (select id from graphile_worker._private_jobs where locked_by = any($1::text[]) for update skip locked) as free
     where jobs.id = free.id`,
    [['pool-x']],
  );
  t.ok(jobsTimesJobs(joined).length > 0, 'the joined form these replaced is a table-times-table loop here');

  for (const [name, text, values] of [
    ['unlocking dead ids jobs', unlockJobsSkippingLocked, [['pool-x']]],
    ['unlocking dead ids queues', unlockQueuesSkippingLocked, [['pool-x']]],
    ['retrying failed expiries now', retryFailedExpiriesStatement, [holdExpiry.task]],
  ] as const) {
    const found = jobsTimesJobs(await plan(text, [...values]));
    t.same(found, [], `${name}: no nested loop over the jobs table on both sides`);
  }
});
