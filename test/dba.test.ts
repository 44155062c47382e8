// The DBA's view: a comment on every table and column, entries with their time, one account's
// history (applied and rejected) through indexes and by seq, in SQL and the client, and the
// reconciliation view that lists only mismatches.
import t from 'tap';
import { createBillingClient } from '../src/index.ts';
import { createTestDatabase } from './helpers/database.ts';
import { startTestWorker } from './helpers/worker.ts';

const database = await createTestDatabase('dba');
const worker = await startTestWorker(database);
const client = createBillingClient({ connectionString: database.url });
t.teardown(async () => {
  await client.close();
  await worker.stop();
  await database.drop();
});

// A story touching accounts a and b, applied and rejected, through a real worker.
const story: [string, () => Promise<unknown>][] = [
  ['open-a', () => client.openAccount({ id: 'open-a', account: 'a' })],
  ['open-b', () => client.openAccount({ id: 'open-b', account: 'b' })],
  ['open-c', () => client.openAccount({ id: 'open-c', account: 'c' })],
  ['credit-a', () => client.credit({ id: 'credit-a', account: 'a', amount: 100n })],
  ['credit-c', () => client.credit({ id: 'credit-c', account: 'c', amount: 5n })],
  ['pay-b', () => client.transfer({ id: 'pay-b', from: 'a', to: 'b', amount: 30n })],
  ['pay-nobody', () => client.transfer({ id: 'pay-nobody', from: 'a', to: 'nobody', amount: 1n })],
  ['debit-b-too-much', () => client.debit({ id: 'debit-b-too-much', account: 'b', amount: 1000n })],
  ['hold-a', () => client.hold({ id: 'hold-a', account: 'a', amount: 10n, hold: 'h-a' })],
  ['capture-a-to-b', () => client.capture({ id: 'capture-a-to-b', hold: 'h-a', amount: 4n, to: 'b' })],
  ['release-a-late', () => client.release({ id: 'release-a-late', hold: 'h-a' })],
  ['hold-c-same-id', () => client.hold({ id: 'hold-c-same-id', account: 'c', amount: 1n, hold: 'h-a' })],
];
for (const [, step] of story) await step();

const historyIds = async (account: string) =>
  (await database.query<{ id: string }>('select id from billing.account_history($1)', [account])).rows.map((r) => r.id);

t.test(
  "an account's history: every command that named it or its holds, applied or rejected, in seq order",
  async (t) => {
    t.same(await historyIds('a'), [
      'open-a',
      'credit-a',
      'pay-b',
      'pay-nobody',
      'hold-a',
      'capture-a-to-b',
      'release-a-late',
    ]);
    t.same(await historyIds('b'), ['open-b', 'pay-b', 'debit-b-too-much', 'capture-a-to-b']);
    t.same(
      await historyIds('c'),
      ['open-c', 'credit-c', 'hold-c-same-id'],
      "a rejected hold naming a's hold id stays c's",
    );
    t.same(await historyIds('nobody'), ['pay-nobody'], 'a rejection naming an account that does not exist');
    const { rows } = await database.query<{ status: string; code: string }>(
      `select status, code from billing.account_history('a') where id in ('pay-nobody', 'release-a-late') order by seq`,
    );
    t.same(rows, [
      { status: 'rejected', code: 'account_not_found' },
      { status: 'rejected', code: 'hold_closed' },
    ]);
  },
);

t.test(
  'pages by seq: each page starts after the last seq of the previous one, nothing skipped or repeated',
  async (t) => {
    const pages: string[][] = [];
    let after = 0n;
    for (;;) {
      const page = await client.history('a', { after, limit: 2 });
      if (page.length === 0) break;
      pages.push(page.map((r) => r.id));
      after = page.at(-1)!.seq;
    }
    t.same(pages, [['open-a', 'credit-a'], ['pay-b', 'pay-nobody'], ['hold-a', 'capture-a-to-b'], ['release-a-late']]);
  },
);

t.test('the history reads through indexes, whatever the size of billing.operations', async (t) => {
  // 50,000 results of other accounts, written directly: the plan must not scan them.
  await database.query(`
    insert into billing.operations (id, type, status, code, request, fingerprint)
    select 'filler-' || i, 'credit', 'applied', 'ok', jsonb_build_object('account', 'f' || (i % 5000), 'amount', '1'), 'x'
    from generate_series(1, 50000) as i`);
  await database.query('analyze billing.operations');
  await database.query('analyze billing.holds');
  const {
    rows: [fn],
  } = await database.query<{ body: string }>(
    `select prosrc as body from pg_proc where oid = 'billing.account_history(text, bigint, integer)'::regprocedure`,
  );
  const body = fn!.body.replaceAll('account_id', `'a'`).replaceAll('after_seq', '0').replaceAll('page_size', '100');
  const { rows } = await database.query<{ 'QUERY PLAN': string }>(`explain ${body}`);
  const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
  t.notMatch(plan, /Seq Scan on operations/, plan);
  for (const index of [
    'operations_request_account',
    'operations_request_from',
    'operations_request_to',
    'operations_request_hold',
  ]) {
    t.match(plan, index, `uses ${index}`);
  }
  t.same(await historyIds('a'), [
    'open-a',
    'credit-a',
    'pay-b',
    'pay-nobody',
    'hold-a',
    'capture-a-to-b',
    'release-a-late',
  ]);
});

t.test('journal entries carry the time of the transaction that wrote them', async (t) => {
  const { rows } = await database.query<{ n: bigint; same: bigint }>(
    `select count(*) as n, count(*) filter (where e.created_at = o.created_at) as same
     from billing.entries e join billing.operations o on o.id = e.operation_id`,
  );
  t.ok(rows[0]!.n > 0n);
  t.equal(rows[0]!.same, rows[0]!.n);
});

t.test('reconciliation_mismatches lists only the accounts whose row disagrees with their entries', async (t) => {
  t.same(
    (await database.query('select * from billing.reconciliation_mismatches')).rows,
    [],
    'none while the ledger is right',
  );
  await database.query(`update billing.accounts set balance = balance + 7 where account = 'b'`);
  try {
    const { rows } = await database.query(
      'select account, balance, entries_balance, held, entries_held from billing.reconciliation_mismatches',
    );
    t.same(rows, [{ account: 'b', balance: 41n, entries_balance: '34', held: 0n, entries_held: '0' }]);
  } finally {
    await database.query(`update billing.accounts set balance = balance - 7 where account = 'b'`);
  }
});

t.test('\\d+ explains everything: every table, view and column of schema billing has a comment', async (t) => {
  const { rows } = await database.query<{ what: string }>(`
    select c.relname as what from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'billing' and c.relkind in ('r', 'v', 'p', 'm') and obj_description(c.oid, 'pg_class') is null
    union all
    select c.relname || '.' || a.attname from pg_class c join pg_namespace n on n.oid = c.relnamespace
    join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    where n.nspname = 'billing' and c.relkind in ('r', 'v', 'p', 'm') and col_description(c.oid, a.attnum) is null
    order by 1`);
  t.same(
    rows.map((r) => r.what),
    [],
    'nothing without a comment',
  );
});
