// Balance at a point (billing.balance_at, the client's balanceAt): through a real worker, the state
// at every seq and at times between results is what billing.accounts showed at that moment; in
// batches it is what each result recorded; on a journal of 100,000 entries it is a few index probes.
import type pg from 'pg';
import t from 'tap';
import { createBillingClient } from '../src/index.ts';
import { createTestDatabase } from './helpers/database.ts';
import { enqueue, enqueueMany, resultOf } from './helpers/ledger.ts';
import { startTestWorker } from './helpers/worker.ts';

const database = await createTestDatabase('balance_at');
const worker = await startTestWorker(database);
const client = createBillingClient({ connectionString: database.url });
t.teardown(async () => {
  await client.close();
  await worker.stop();
  await database.drop();
});

type State = { balance: bigint; held: bigint; available: bigint };
type Row = State & { account: string; currency: string; seq: bigint };

async function balanceAt(account: string, point: bigint | string): Promise<Row | undefined> {
  const { rows } = await database.query<Row>(
    typeof point === 'bigint'
      ? 'select * from billing.balance_at($1, after_seq => $2)'
      : 'select * from billing.balance_at($1, at => $2::timestamptz)',
    [account, point],
  );
  if (rows.length > 1) throw new Error(`billing.balance_at(${account}, ${point}) returned ${rows.length} rows`);
  return rows[0];
}

const accounts = ['ba-a', 'ba-b', 'ba-c'];

/** What billing.accounts shows now, and the database clock, in one statement (one snapshot). */
async function observe(): Promise<{ at: string; states: Map<string, State> }> {
  const { rows } = await database.query<State & { account: string | null; at: string }>(
    `select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US+00') as at, a.account, a.balance, a.held, a.available
     from (values (1)) as one left join billing.accounts as a on a.account = any($1)`,
    [accounts],
  );
  const states = new Map<string, State>();
  for (const row of rows)
    if (row.account) states.set(row.account, { balance: row.balance, held: row.held, available: row.available });
  return { at: rows[0]!.at, states };
}

// One command at a time through add_job and a real worker: after each result, nothing else runs
// until the next command is enqueued, so what billing.accounts shows then is the state after that seq.
const story: [string, Record<string, string>][] = [
  ['open_account', { id: 'ba-open-a', account: 'ba-a' }],
  ['open_account', { id: 'ba-open-b', account: 'ba-b' }],
  ['credit', { id: 'ba-credit', account: 'ba-a', amount: '1000' }],
  ['debit', { id: 'ba-debit', account: 'ba-a', amount: '250' }],
  ['hold', { id: 'ba-hold-1', account: 'ba-a', amount: '300', hold: 'ba-h1' }],
  ['transfer', { id: 'ba-pay', from: 'ba-a', to: 'ba-b', amount: '100' }],
  ['debit', { id: 'ba-debit-too-much', account: 'ba-a', amount: '500' }],
  ['capture', { id: 'ba-capture', hold: 'ba-h1', amount: '200', to: 'ba-b' }],
  ['hold', { id: 'ba-hold-2', account: 'ba-a', amount: '50', hold: 'ba-h2' }],
  // Refused: ba-c is not open yet. balance_at passes over it to find ba-c's open_account.
  ['credit', { id: 'ba-credit-c-early', account: 'ba-c', amount: '5' }],
  ['open_account', { id: 'ba-open-c', account: 'ba-c' }],
  ['release', { id: 'ba-release', hold: 'ba-h2' }],
  ['credit', { id: 'ba-credit-b', account: 'ba-b', amount: '7' }],
];
const before = await observe();
const moments: { seq: bigint; id: string; at: string; sequencedAt: string; states: Map<string, State> }[] = [];
for (const [type, payload] of story) {
  await enqueue(database, type, payload);
  const result = await resultOf(database, payload.id!);
  const { rows } = await database.query<{ sequenced_at: string }>(
    `select to_char(sequenced_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US+00') as sequenced_at
     from billing.operations where id = $1`,
    [payload.id],
  );
  moments.push({ seq: result.seq, id: payload.id!, sequencedAt: rows[0]!.sequenced_at, ...(await observe()) });
}
const newest = moments.at(-1)!.seq;

/** The state of an account after every result up to `seq`, as observed (undefined: not open then). */
function observedAfter(account: string, seq: bigint): { seq: bigint; state: State | undefined } {
  const moment = moments.findLast((m) => m.seq <= seq);
  return { seq: moment?.seq ?? 0n, state: moment?.states.get(account) };
}

t.test('the story took one seq per result, and its rejection stayed a rejection', async (t) => {
  t.same(
    moments.map((m) => m.seq),
    moments.map((_, i) => moments[0]!.seq + BigInt(i)),
  );
  t.equal((await resultOf(database, 'ba-debit-too-much')).code, 'insufficient_funds');
  t.equal((await resultOf(database, 'ba-credit-c-early')).code, 'account_not_found');
  t.same(moments.at(-1)!.states.get('ba-a'), { balance: 450n, held: 0n, available: 450n });
});

t.test('after_seq: at every seq the state billing.accounts showed right after that result', async (t) => {
  for (let seq = -1n; seq <= newest + 2n; seq++) {
    for (const account of accounts) {
      const observed = observedAfter(account, seq);
      const row = await balanceAt(account, seq);
      if (!observed.state) {
        t.equal(row, undefined, `${account} after seq ${seq}: not open then, no row`);
        continue;
      }
      t.same(
        row,
        { account, currency: 'USD', ...observed.state, seq: seq > newest ? newest : seq },
        `${account} after seq ${seq}`,
      );
    }
  }
});

t.test('at a time: the state after every result sequenced by then', async (t) => {
  for (const account of accounts) {
    t.equal(await balanceAt(account, before.at), undefined, `${account}: before the first result, no row`);
    t.equal(await balanceAt(account, '-infinity'), undefined, `${account}: at -infinity, no row`);
  }
  for (const [i, moment] of moments.entries()) {
    for (const account of accounts) {
      // A time read after the result was seen and before the next command was enqueued.
      const between = await balanceAt(account, moment.at);
      const state = moment.states.get(account);
      t.same(
        between,
        state && { account, currency: 'USD', ...state, seq: moment.seq },
        `${account} at ${moment.id}'s moment`,
      );
      // The exact boundary: at the result's sequenced_at it counts, a microsecond before it does not.
      t.same(await balanceAt(account, moment.sequencedAt), between, `${account} at ${moment.id}'s sequenced_at`);
      const justBefore = await database.query<Row>(
        `select * from billing.balance_at($1, at => $2::timestamptz - interval '1 microsecond')`,
        [account, moment.sequencedAt],
      );
      const previous = moments[i - 1];
      const earlier = previous?.states.get(account);
      t.same(
        justBefore.rows[0],
        earlier && { account, currency: 'USD', ...earlier, seq: previous!.seq },
        `${account} a microsecond before ${moment.id}`,
      );
    }
  }
  for (const account of accounts) {
    const now = moments.at(-1)!.states.get(account)!;
    t.same(
      await balanceAt(account, 'infinity'),
      { account, currency: 'USD', ...now, seq: newest },
      `${account} at infinity`,
    );
  }
});

t.test('an account with no entries, one never opened, and ids no account can have', async (t) => {
  const openC = moments.find((m) => m.id === 'ba-open-c')!.seq;
  t.same(await balanceAt('ba-c', openC), {
    account: 'ba-c',
    currency: 'USD',
    balance: 0n,
    held: 0n,
    available: 0n,
    seq: openC,
  });
  t.equal(await balanceAt('ba-c', openC - 1n), undefined, 'the seq before its open_account: no row');
  for (const id of ['nobody', '', 'a b', 'x'.repeat(100_000), "ba-a' or '1'='1"]) {
    t.equal(await balanceAt(id, newest), undefined, `${JSON.stringify(id.slice(0, 20))}: no row`);
    t.equal(await balanceAt(id, 'infinity'), undefined, `${JSON.stringify(id.slice(0, 20))} at a time: no row`);
  }
  const { rows } = await database.query('select * from billing.balance_at(null, after_seq => 1)');
  t.same(rows, [], 'null in, no row out (strict)');
  const huge = await balanceAt('ba-a', 9223372036854775807n);
  t.equal(huge?.seq, newest, 'the largest seq there is: the state now, after the newest result');
});

t.test('in batches: the state at each result is the balances that result recorded', async (t) => {
  // Enough money for some of these to apply and some to be refused, all enqueued at once so that
  // the worker groups them into batches (several results per transaction).
  await client.openAccount({ id: 'bb-open-x', account: 'bb-x' });
  await client.openAccount({ id: 'bb-open-y', account: 'bb-y' });
  await client.credit({ id: 'bb-fund', account: 'bb-x', amount: 100n });
  await enqueueMany(
    database,
    'billing/transfer',
    60,
    `json_build_object('id', 'bb-t' || g, 'from', case when g % 3 = 0 then 'bb-y' else 'bb-x' end,
       'to', case when g % 3 = 0 then 'bb-x' else 'bb-y' end, 'amount', (g % 7 + 1)::text)`,
  );
  await enqueueMany(
    database,
    'billing/hold',
    20,
    `json_build_object('id', 'bb-h' || g, 'account', 'bb-x', 'amount', '3', 'ttl_seconds', 600)`,
  );
  for (let g = 1; g <= 60; g++) await resultOf(database, `bb-t${g}`);
  for (let g = 1; g <= 20; g++) await resultOf(database, `bb-h${g}`);
  const { rows: results } = await database.query<{
    seq: bigint;
    sequenced_at: string;
    status: string;
    balances: { account: string; balance: string; held: string }[];
  }>(
    `select seq, to_char(sequenced_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US+00') as sequenced_at, status, balances
     from billing.operations where id like 'bb-%' order by seq`,
  );
  const { rows: batches } = await database.query<{ largest: bigint }>(
    "select max(n) as largest from (select count(*) as n from billing.operations where id like 'bb-%' group by created_at) as b",
  );
  t.ok(batches[0]!.largest > 1n, `results shared a transaction (the largest batch had ${batches[0]!.largest})`);
  t.ok(
    results.some((r) => r.status === 'rejected') && results.some((r) => r.status === 'applied'),
    'applied and rejected',
  );
  let checked = 0;
  for (const result of results) {
    for (const recorded of result.balances) {
      const row = await balanceAt(recorded.account, result.seq);
      t.same(
        row && [row.balance, row.held, row.seq],
        [BigInt(recorded.balance), BigInt(recorded.held), result.seq],
        `${recorded.account} after seq ${result.seq}`,
      );
      // At its sequenced_at: the cut is this result or a later one of the same instant, never an earlier one.
      const atTime = await balanceAt(recorded.account, result.sequenced_at);
      t.ok(atTime && atTime.seq >= result.seq, 'the cut of its sequenced_at includes it');
      t.same(atTime, await balanceAt(recorded.account, atTime!.seq), 'and is the state after that seq');
      checked++;
    }
  }
  t.ok(checked >= 60, `${checked} recorded balances checked`);
  const { rows: backwards } = await database.query<{ n: bigint }>(
    `select count(*) as n from (select sequenced_at < lag(sequenced_at) over (order by seq) as back from billing.operations) as o
     where back`,
  );
  t.equal(backwards[0]!.n, 0n, 'sequenced_at never decreases in seq order');
});

t.test("the client's balanceAt: a seq, a Date or a time as text; typed; bad points refused", async (t) => {
  const credit = moments.find((m) => m.id === 'ba-credit')!;
  const atSeq = await client.balanceAt('ba-a', credit.seq);
  t.same(atSeq, { account: 'ba-a', currency: 'USD', balance: 1000n, held: 0n, available: 1000n, seq: credit.seq });
  t.type(atSeq?.balance, 'bigint');
  t.same(await client.balanceAt('ba-a', credit.sequencedAt), atSeq, 'text keeps the microseconds');
  const at = new Date(
    Date.parse(
      moments
        .find((m) => m.id === 'ba-hold-1')!
        .at.replace(' ', 'T')
        .replace('+00', 'Z'),
    ),
  );
  t.same(
    await client.balanceAt('ba-a', at),
    { account: 'ba-a', currency: 'USD', balance: 750n, held: 300n, available: 450n, seq: credit.seq + 2n },
    'a Date',
  );
  t.equal(await client.balanceAt('ba-a', 0n), undefined, 'seq 0: before every result');
  t.equal(
    await client.balanceAt('ba-a', new Date(-8.64e15)),
    undefined,
    'the earliest Date there is: before everything',
  );
  t.equal((await client.balanceAt('ba-a', new Date(8.64e15)))?.seq, await client.lastSeq(), 'the latest Date: now');
  t.equal(await client.balanceAt('nobody', 1n), undefined);
  t.equal(await client.balanceAt('bad\u0000id', 1n), undefined, 'an id no account can have: no query, no row');
  await t.rejects(client.balanceAt('ba-a', 5 as unknown as bigint), TypeError, 'a number is not a seq');
  await t.rejects(client.balanceAt('ba-a', -1n), RangeError);
  await t.rejects(client.balanceAt('ba-a', 2n ** 63n), RangeError, 'beyond int8');
  await t.rejects(client.balanceAt('ba-a', new Date(Number.NaN)), RangeError);
  await t.rejects(client.balanceAt('ba-a', 'yesterday'), RangeError);
  await t.rejects(client.balanceAt('ba-a', '2026-12-07T12:00:00'), RangeError, 'a time without a zone');
  await t.rejects(client.balanceAt('ba-a', '2026-13-07T12:00:00Z'), RangeError, 'month 13: the database says no');
});

t.test('a journal of 100,000 entries: a few index probes, not a walk through the account', async (t) => {
  // Written directly (this is about reading): 100,000 credits of 1, every second one to a hot
  // account, the others over 1,000 accounts; entry ids and seqs in the same order per account.
  await database.query(`insert into billing.accounts (account, currency)
    select 'big-' || g, 'USD' from generate_series(0, 999) as g union all select 'big-hot', 'USD'`);
  await database.query(`insert into billing.operations (id, type, status, code, request, fingerprint)
    select 'big-' || g, 'credit', 'applied', 'ok',
           json_build_object('account', case when g % 2 = 0 then 'big-hot' else 'big-' || g % 1000 end, 'amount', '1'), 'f'
    from generate_series(1, 100000) as g order by g`);
  await database.query(`insert into billing.entries (operation_id, account, balance_delta, held_delta, balance_after, held_after)
    select 'big-' || g, account, 1, 0, row_number() over (partition by account order by g), 0
    from (select g, case when g % 2 = 0 then 'big-hot' else 'big-' || g % 1000 end as account from generate_series(1, 100000) as g) as c
    order by g`);
  // And an account opened last, after a credit to it was refused: no entries.
  await database.query(`insert into billing.accounts (account, currency) values ('big-empty', 'USD')`);
  await database.query(`insert into billing.operations (id, type, status, code, request, fingerprint)
    values ('big-empty-early', 'credit', 'rejected', 'account_not_found', '{"account": "big-empty", "amount": "1"}', 'f'),
           ('big-empty-open', 'open_account', 'applied', 'ok', '{"account": "big-empty"}', 'f')`);
  await database.query('analyze billing.entries, billing.operations, billing.accounts');
  const { rows: emptyOpen } = await database.query<{ seq: bigint }>(
    "select seq from billing.operations where id = 'big-empty-open'",
  );
  const openSeq = emptyOpen[0]!.seq;
  const { rows: middle } = await database.query<{ seq: bigint; sequenced_at: string }>(
    `select seq, to_char(sequenced_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US+00') as sequenced_at
     from billing.operations where id = 'big-50001'`,
  );
  const { seq, sequenced_at: sequencedAt } = middle[0]!;

  const session = await database.pool.connect();
  const plans: string[] = [];
  const onNotice = (notice: { message?: string | undefined }) => {
    plans.push(notice.message ?? '');
  };
  try {
    // The naive query is the oracle: the last entry at or before the cut, walking back through the account.
    const naive = `select e.balance_after from billing.entries as e join billing.operations as o on o.id = e.operation_id
      where e.account = 'big-hot' and o.seq <= $1 order by e.id desc limit 1`;
    await session.query('begin');
    let counted = await tableCounts(session);
    const expected = (await session.query<{ balance_after: bigint }>(naive, [seq])).rows[0]!.balance_after;
    const naiveFetches = (await tableCounts(session)).entries.fetched - counted.entries.fetched;
    await session.query('commit');
    t.equal(expected, 25_000n, 'the oracle: 25,000 credits of the hot account up to the middle');
    t.ok(naiveFetches > 20_000n, `the naive query fetched ${naiveFetches} entries`);

    // Every statement balance_at runs, with its plan (auto_explain, nested statements included).
    await session.query('begin');
    await session.query("load 'auto_explain'");
    await session.query('set local auto_explain.log_min_duration = 0');
    await session.query('set local auto_explain.log_nested_statements = on');
    await session.query('set local auto_explain.log_level = notice');
    counted = await tableCounts(session);
    session.on('notice', onNotice);
    const bySeq = (await session.query<Row>("select * from billing.balance_at('big-hot', after_seq => $1)", [seq]))
      .rows[0];
    const byTime = (
      await session.query<Row>("select * from billing.balance_at('big-hot', at => $1::timestamptz)", [sequencedAt])
    ).rows[0];
    const empty = (
      await session.query<Row>("select * from billing.balance_at('big-empty', after_seq => $1)", [openSeq])
    ).rows;
    const notYet = (
      await session.query<Row>("select * from billing.balance_at('big-empty', after_seq => $1)", [openSeq - 1n])
    ).rows;
    session.off('notice', onNotice);
    const after = await tableCounts(session);
    await session.query('commit');

    t.same(bySeq && [bySeq.balance, bySeq.seq], [expected, seq], 'after_seq: the oracle balance');
    t.same(byTime && [byTime.balance, byTime.seq], [expected, seq], 'at its sequenced_at: the same');
    t.same(
      empty.map((r) => [r.balance, r.held, r.available, r.seq]),
      [[0n, 0n, 0n, openSeq]],
      'an account with no entries, after its open_account',
    );
    t.same(notYet, [], 'before it: no row (the refused credit before it did not open it)');
    for (const table of ['entries', 'operations', 'accounts'] as const)
      t.equal(after[table].seqScans - counted[table].seqScans, 0n, `no sequential scan of billing.${table}`);
    const fetches = after.entries.fetched - counted.entries.fetched;
    t.ok(fetches < 200n, `four calls of balance_at fetched ${fetches} entries (the naive query ${naiveFetches})`);
    const statements = plans.filter((p) => !p.includes('balance_at('));
    t.ok(statements.length > 10, `${statements.length} statements planned inside balance_at`);
    t.same(
      statements.filter((p) => /Seq Scan|Filter:/.test(p)),
      [],
      'each one an index scan whose every condition is an index condition (no filter: no walk)',
    );
    t.ok(
      statements.some((p) => p.includes('entries_account_id')),
      'entries by (account, id)',
    );
    t.ok(
      statements.some((p) => p.includes('operations_seq_key')),
      'results by seq',
    );
    t.ok(
      statements.some((p) => p.includes('operations_pkey')),
      "an entry's result by its id",
    );
    t.ok(
      statements.some((p) => p.includes('operations_request_account')),
      "an account's results in seq order, for its open_account",
    );
  } finally {
    session.off('notice', onNotice);
    session.release();
  }
});

type Table = 'entries' | 'operations' | 'accounts';

/**
 * Sequential scans and rows fetched through indexes, per table, counted by this session and not yet
 * flushed to the shared statistics: compare two readings in one transaction (no flush happens inside one).
 */
async function tableCounts(session: pg.PoolClient): Promise<Record<Table, { seqScans: bigint; fetched: bigint }>> {
  const { rows } = await session.query<{ relname: string; seq_scan: bigint; idx_tup_fetch: bigint }>(
    "select relname, seq_scan, idx_tup_fetch from pg_stat_xact_user_tables where schemaname = 'billing'",
  );
  const counts = (table: Table) => {
    const row = rows.find((r) => r.relname === table);
    return { seqScans: row?.seq_scan ?? 0n, fetched: row?.idx_tup_fetch ?? 0n };
  };
  return { entries: counts('entries'), operations: counts('operations'), accounts: counts('accounts') };
}
