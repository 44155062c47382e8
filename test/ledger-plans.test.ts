import pg from 'pg';
import t from 'tap';
import { parseCommand } from '../src/commands/parse.ts';
import { createPool } from '../src/db/pool.ts';
import { applyBatch } from '../src/ledger/apply.ts';
import { selectEarlierResults } from '../src/ledger/batch-sql.ts';
import type { BatchItem } from '../src/ledger/plan.ts';
import { createTestDatabase } from './helpers/database.ts';

// The ledger's statements are prepared once per connection, and after five runs PostgreSQL keeps
// a generic plan. One made while billing.operations was small looked results up by a sequential
// scan, and kept doing so as the table grew (a long-running worker on a new ledger, until an
// ANALYZE invalidates the plan; never, with autovacuum off). Every access of the batch is by key:
// plans made on a small ledger must stay index scans on a large one.

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  Plans?: PlanNode[];
}

function seqScansOf(node: PlanNode, relation: string): PlanNode[] {
  const here = node['Node Type'] === 'Seq Scan' && node['Relation Name'] === relation ? [node] : [];
  return [...here, ...(node.Plans ?? []).flatMap((child) => seqScansOf(child, relation))];
}

const item = (task: string, payload: object, id: string): BatchItem => ({
  parsed: parseCommand({ task: task as never, payload: { id, ...payload }, defaultId: id, defaultCurrency: 'USD' }),
  jobId: null,
});

t.test("the ledger's plans made on a small ledger stay index scans as it grows", async (t) => {
  const database = await createTestDatabase('ledger-plans');
  t.teardown(() => database.drop());
  const lookup = selectEarlierResults(database.db, ['t1', 't2']).compile();
  const explain = async (client: pg.ClientBase, name: string) => {
    // EXPLAIN EXECUTE takes no bound parameters: the lookup's one parameter (a JSON list) as a literal.
    const list = pg.escapeLiteral(String(lookup.parameters[0]));
    const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(
      `explain (format json) execute ${pg.escapeIdentifier(name)}(${list})`,
    );
    return rows[0]!['QUERY PLAN'][0].Plan;
  };

  // A plain session preparing the same lookup: the plan a connection gets without our settings.
  const plain = new pg.Client({ connectionString: database.url });
  await plain.connect();
  t.teardown(() => plain.end());
  for (let run = 0; run < 10; run++)
    await plain.query({ name: 'plain_lookup', text: lookup.sql, values: [...lookup.parameters] });
  // Its generic plan, read while the ledger is small. (Read after the growth below it is the same
  // plan unless PostgreSQL dropped its cached plans, which it does when its shared invalidation
  // queue overflows, e.g. under other databases' DDL in a parallel test run.)
  t.ok(
    seqScansOf(await explain(plain, 'plain_lookup'), 'operations').length > 0,
    "a plain session's generic plan, made while billing.operations is small, is a sequential scan",
  );

  // A pool with none of the worker's session options: the batch must carry what it needs itself.
  const ledgerPool = createPool({ connectionString: database.url, max: 2, pipeline: true });
  t.teardown(() => ledgerPool.end());
  const accounts = Array.from({ length: 50 }, (_, i) => `a${i}`);
  await applyBatch(
    ledgerPool,
    accounts.map((account) => item('open_account', { account }, `open-${account}`)),
  );
  await applyBatch(
    ledgerPool,
    accounts.map((account) => item('credit', { account, amount: '1000' }, `fund-${account}`)),
  );
  for (let batch = 0; batch < 10; batch++)
    await applyBatch(
      ledgerPool,
      accounts.map((account, i) =>
        item('transfer', { from: account, to: accounts[(i + 1) % accounts.length], amount: '1' }, `t-${batch}-${i}`),
      ),
    );

  await database.query(
    `insert into billing.operations (id, type, status, code, request, fingerprint)
     select 'old-' || g, 'debit', 'rejected', 'insufficient_funds', '{}', '' from generate_series(1, 100000) g`,
  );

  const clients = await Promise.all([ledgerPool.connect(), ledgerPool.connect()]);
  try {
    let checked = 0;
    for (const client of clients) {
      const { rows } = await client.query<{ name: string; generic_plans: string }>(
        'select name, generic_plans from pg_prepared_statements where statement = $1',
        [lookup.sql],
      );
      const statement = rows[0];
      if (!statement || Number(statement.generic_plans) === 0) continue;
      checked += 1;
      t.same(
        seqScansOf(await explain(client, statement.name), 'operations'),
        [],
        "the ledger's session uses an index scan for the earlier results",
      );
    }
    t.ok(checked > 0, 'a ledger session ran the lookup on a generic plan (the case this is about)');
  } finally {
    for (const client of clients) client.release();
  }
});
