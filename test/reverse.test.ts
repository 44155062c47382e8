// The reverse command: each code through a real worker (add_job from SQL), reversals in the same
// batch as the command they name (applyBatch on the real database), and partial reversals that
// never add up past the original, in one batch, across the workers, and in the database itself.
import type pg from 'pg';
import t from 'tap';
import { parseCommand } from '../src/commands/parse.ts';
import { applyBatch } from '../src/ledger/apply.ts';
import { createTestDatabase } from './helpers/database.ts';
import { balanceOf, drained, enqueue, enqueueMany, resultOf, run } from './helpers/ledger.ts';
import { startTestWorker } from './helpers/worker.ts';
import { startWorkerProcesses } from './helpers/worker-processes.ts';
import { runCli } from './helpers/cli.ts';

const database = await createTestDatabase('reverse');
const worker = await startTestWorker(database);
t.teardown(async () => {
  await worker.stop();
  await database.drop();
});

let counter = 0;
const nextId = (label: string) => `${label}-${++counter}`;
const open = (account: string, currency?: string) =>
  run(database, 'open_account', { id: nextId('open'), account, ...(currency ? { currency } : {}) });
const credit = (account: string, amount: string, id = nextId('credit')) =>
  run(database, 'credit', { id, account, amount });
const reverse = (of: string, amount?: string, id = nextId('rev')) =>
  run(database, 'reverse', { id, of, ...(amount === undefined ? {} : { amount }) });
const balances = async (...accounts: string[]) =>
  Promise.all(accounts.map(async (account) => (await balanceOf(database, account))?.balance));
const reversesOf = async (id: string) =>
  (
    await database.query<{ id: string; code: string }>(
      'select id, code from billing.operations where reverses = $1 order by seq',
      [id],
    )
  ).rows.map((r) => [r.id, r.code]);

t.test('a credit, a debit and a transfer put back whole, naming what they reverse', async (t) => {
  await open('w-a');
  await open('w-b');
  await credit('w-a', '100', 'w-credit');
  await run(database, 'debit', { id: 'w-debit', account: 'w-a', amount: '30' });
  await run(database, 'transfer', { id: 'w-transfer', from: 'w-a', to: 'w-b', amount: '50' });
  t.same(await balances('w-a', 'w-b'), [20n, 50n]);

  const transfer = await reverse('w-transfer', undefined, 'w-rev-transfer');
  t.same([transfer.type, transfer.status, transfer.code], ['reverse', 'applied', 'ok']);
  t.same(transfer.balances, [
    { account: 'w-b', balance: '0', held: '0' },
    { account: 'w-a', balance: '70', held: '0' },
  ]);
  t.equal((await reverse('w-debit')).code, 'ok');
  t.equal((await reverse('w-credit')).code, 'ok');
  t.same(await balances('w-a', 'w-b'), [0n, 0n], 'back to before the three');
  t.same(await reversesOf('w-transfer'), [['w-rev-transfer', 'ok']], 'operations.reverses names the reversed command');
  const { rows } = await database.query<{ account: string; balance_delta: bigint }>(
    "select account, balance_delta from billing.entries where operation_id = 'w-rev-transfer' order by id",
  );
  t.same(
    rows.map((r) => [r.account, r.balance_delta]),
    [
      ['w-b', -50n],
      ['w-a', 50n],
    ],
  );
});

t.test('partial reversals add up to the original at most: amount_exceeds_remaining', async (t) => {
  await open('p-a');
  await open('p-b');
  await credit('p-a', '100');
  await run(database, 'transfer', { id: 'p-transfer', from: 'p-a', to: 'p-b', amount: '100' });
  t.equal((await reverse('p-transfer', '30')).code, 'ok');
  t.equal((await reverse('p-transfer', '60')).code, 'ok');
  const over = await reverse('p-transfer', '11');
  t.same(
    [over.code, over.message],
    ['amount_exceeds_remaining', 'amount 11 is more than the 10 left to reverse of p-transfer'],
  );
  t.equal((await reverse('p-transfer')).code, 'ok', 'no amount: what is left (10)');
  const done = await reverse('p-transfer');
  t.same([done.code, done.message], ['amount_exceeds_remaining', 'p-transfer is already reversed in full']);
  t.same(await balances('p-a', 'p-b'), [100n, 0n]);
  const { rows } = await database.query(
    "select total, reversed from billing.reversal_totals where operation_id = 'p-transfer'",
  );
  t.same(rows, [{ total: 100n, reversed: 100n }]);
});

t.test('a capture to another account is put back; the hold stays captured', async (t) => {
  await open('c-a');
  await open('c-b');
  await credit('c-a', '100');
  await run(database, 'hold', { id: 'c-hold', account: 'c-a', amount: '80' });
  await run(database, 'capture', { id: 'c-capture', hold: 'c-hold', amount: '50', to: 'c-b' });
  t.same(await balances('c-a', 'c-b'), [50n, 50n]);
  t.equal((await reverse('c-capture', '20')).code, 'ok');
  t.same(await balances('c-a', 'c-b'), [70n, 30n]);
  const over = await reverse('c-capture', '31');
  t.equal(over.code, 'amount_exceeds_remaining', 'a capture reverses up to what it captured (50), not the hold (80)');
  const { rows } = await database.query("select status from billing.holds where hold = 'c-hold'");
  t.same(rows, [{ status: 'captured' }]);
});

t.test('a transaction (a payment and its fee) is reversed whole, once, the last leg first', async (t) => {
  for (const account of ['t-alice', 't-shop', 't-fees']) await open(account);
  await credit('t-alice', '1000');
  await run(database, 'transaction', {
    id: 't-pay',
    legs: [
      { from: 't-alice', to: 't-shop', amount: '1000' },
      { from: 't-shop', to: 't-fees', amount: '30' },
    ],
  });
  const partial = await reverse('t-pay', '10');
  t.same(
    [partial.code, partial.message],
    ['not_reversible', 'amount: a transaction is reversed whole, without an amount'],
  );
  const whole = await reverse('t-pay', undefined, 't-refund');
  t.equal(whole.code, 'ok');
  t.same(await balances('t-alice', 't-shop', 't-fees'), [1000n, 0n, 0n]);
  const { rows } = await database.query<{ account: string; balance_delta: bigint }>(
    "select account, balance_delta from billing.entries where operation_id = 't-refund' order by id",
  );
  t.same(
    rows.map((r) => [r.account, r.balance_delta]),
    [
      ['t-fees', -30n],
      ['t-shop', 30n],
      ['t-shop', -1000n],
      ['t-alice', 1000n],
    ],
  );
  t.equal((await reverse('t-pay')).code, 'amount_exceeds_remaining');
  // A leg that spent what an earlier leg brought in: undone first, it gives the money back first.
  await open('t-chain');
  await run(database, 'transaction', {
    id: 't-chain-tx',
    legs: [
      { to: 't-chain', amount: '40' },
      { from: 't-chain', to: 't-shop', amount: '40' },
    ],
  });
  t.equal((await reverse('t-chain-tx')).code, 'ok');
  t.same(await balances('t-chain', 't-shop'), [0n, 0n]);
});

t.test('operation_not_found, then the command exists: its reversal applies', async (t) => {
  await open('n-a');
  const early = await reverse('n-credit', undefined, 'n-early');
  t.same([early.code, early.status], ['operation_not_found', 'rejected']);
  await credit('n-a', '5', 'n-credit');
  t.equal((await reverse('n-credit')).code, 'ok');
  t.same(await reversesOf('n-credit'), [
    ['n-early', 'operation_not_found'],
    [`rev-${counter}`, 'ok'],
  ]);
});

t.test('not_reversible: rejected, not a money move, a reversal, no money moved', async (t) => {
  await open('x-a');
  await credit('x-a', '10');
  await run(database, 'debit', { id: 'x-rejected', account: 'x-a', amount: '99' });
  await run(database, 'hold', { id: 'x-hold', account: 'x-a', amount: '5' });
  await run(database, 'capture', { id: 'x-self-capture', hold: 'x-hold', to: 'x-a' });
  await run(database, 'debit', { id: 'x-debit', account: 'x-a', amount: '1' });
  await reverse('x-debit', undefined, 'x-rev');
  const cases: [string, string][] = [
    ['x-rejected', 'x-rejected was rejected: it moved nothing'],
    ['x-hold', 'x-hold is a hold, not a money move'],
    ['x-rev', 'x-rev is a reverse, not a money move'],
    ['x-self-capture', 'x-self-capture moved no money between accounts'],
  ];
  for (const [of, message] of cases) {
    const result = await reverse(of);
    t.same([result.code, result.message], ['not_reversible', message], of);
  }
});

t.test('insufficient_funds and overflow: the reversal checks each move as a leg', async (t) => {
  await open('f-a');
  await open('f-b');
  await credit('f-a', '100', 'f-credit');
  await run(database, 'transfer', { id: 'f-spent', from: 'f-a', to: 'f-b', amount: '70' });
  const spent = await reverse('f-credit');
  t.same(
    [spent.code, spent.message],
    ['insufficient_funds', 'reversing f-credit: account f-a has 30 available, 100 needed'],
  );
  t.equal((await reverse('f-credit', '30')).code, 'ok', 'a part that is there can be put back');
  await open('f-full');
  await credit('f-full', '10');
  await run(database, 'debit', { id: 'f-debit', account: 'f-full', amount: '10' });
  await credit('f-full', '9223372036854775807');
  t.equal((await reverse('f-debit')).code, 'overflow');
});

/** A parsed command for applyBatch, as the worker would parse the job. */
function item(task: 'credit' | 'transfer' | 'reverse', payload: { id: string } & Record<string, unknown>) {
  return { parsed: parseCommand({ task, payload, defaultId: payload.id, defaultCurrency: 'USD' }), jobId: null };
}

t.test('in one batch: the reversed command before its reversal, two reversals of it, and one before it', async (t) => {
  await open('b-a');
  await open('b-b');
  await credit('b-a', '100');
  const applied = await applyBatch(database.pool, [
    item('reverse', { id: 'b-too-early', of: 'b-transfer' }),
    item('transfer', { id: 'b-transfer', from: 'b-a', to: 'b-b', amount: '60' }),
    item('reverse', { id: 'b-rev-1', of: 'b-transfer', amount: '40' }),
    item('reverse', { id: 'b-rev-2', of: 'b-transfer', amount: '40' }),
    item('reverse', { id: 'b-rev-3', of: 'b-transfer', amount: '20' }),
  ]);
  t.same(
    applied.outcomes.map((o) => (o.kind === 'recorded' ? o.result.code : o.kind)),
    ['operation_not_found', 'ok', 'ok', 'amount_exceeds_remaining', 'ok'],
  );
  t.same(await balances('b-a', 'b-b'), [100n, 0n]);
  const { rows } = await database.query(
    "select total, reversed from billing.reversal_totals where operation_id = 'b-transfer'",
  );
  t.same(rows, [{ total: 60n, reversed: 60n }], 'one running total, the sum of the batch');
});

t.test(
  'a reversal whose command gets its result after the pre-read: the batch starts over, locks its accounts',
  async (t) => {
    await open('r-a');
    await open('r-b');
    await credit('r-a', '100');
    // Hold the lock of the command's id while it is written, so the reversal's pre-read misses it
    // and its slot lock waits for it: under the locks it then finds a command whose accounts it did
    // not lock, starts over, and decides with them locked.
    const writer: pg.PoolClient = await database.pool.connect();
    try {
      await writer.query('begin');
      await writer.query('select 1 from billing.lock_slots where slot = $1 for update', [slotOfId('r-transfer')]);
      const reversal = applyBatch(database.pool, [item('reverse', { id: 'r-rev', of: 'r-transfer' })]);
      await waitForLockWaiter();
      await writer.query(
        "insert into billing.operations (id, type, status, code, request, fingerprint) values ('r-transfer', 'transfer', 'applied', 'ok', '{}', 'x')",
      );
      await writer.query(
        `insert into billing.entries (operation_id, account, balance_delta, held_delta, balance_after, held_after)
       values ('r-transfer', 'r-a', -100, 0, 0, 0), ('r-transfer', 'r-b', 100, 0, 100, 0)`,
      );
      await writer.query("update billing.accounts set balance = balance - 100 where account = 'r-a'");
      await writer.query("update billing.accounts set balance = balance + 100 where account = 'r-b'");
      await writer.query('commit');
      const applied = await reversal;
      t.same(
        applied.outcomes.map((o) => (o.kind === 'recorded' ? o.result.code : o.kind)),
        ['ok'],
      );
    } finally {
      writer.release();
    }
    t.same(await balances('r-a', 'r-b'), [100n, 0n]);
  },
);

async function waitForLockWaiter(): Promise<void> {
  for (;;) {
    const { rows } = await database.query(
      "select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
    );
    if (rows.length > 0) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const { slotOf } = await import('../src/ledger/lock-slots.ts');
const slotOfId = (id: string) => slotOf(`id:${id}`);

t.test('reversals of one command on two workers at once never put back more than it moved', async (t) => {
  const workers = startWorkerProcesses(database, 2);
  t.teardown(() => workers.stop());
  await open('k-a');
  await open('k-b');
  await credit('k-a', '50');
  await run(database, 'transfer', { id: 'k-transfer', from: 'k-a', to: 'k-b', amount: '50' });
  await open('k-c');
  await credit('k-c', '1000');
  await run(database, 'transfer', { id: 'k-fill', from: 'k-c', to: 'k-b', amount: '1000' });
  await enqueueMany(
    database,
    'billing/reverse',
    120,
    `json_build_object('id', 'k-rev-' || g, 'of', 'k-transfer', 'amount', '1')`,
  );
  await drained(database, 60_000);
  const { rows } = await database.query<{ code: string; n: bigint }>(
    "select code, count(*) as n from billing.operations where reverses = 'k-transfer' group by code order by code",
  );
  t.same(
    rows.map((r) => [r.code, r.n]),
    [
      ['amount_exceeds_remaining', 70n],
      ['ok', 50n],
    ],
  );
  t.same(await balances('k-a', 'k-b'), [50n, 1000n]);
  t.notMatch(workers.logs(), /will retry/, 'no batch failed on the way');
});

t.test('a reversal racing the command it names: its code agrees with seq order', async (t) => {
  const workers = startWorkerProcesses(database, 2);
  t.teardown(() => workers.stop());
  await open('race-a');
  await open('race-b');
  await credit('race-a', '100000');
  const pairs = 100;
  // Each pair in one add_jobs call, the reversal first for odd pairs, the transfer first for even ones.
  for (let g = 1; g <= pairs; g++) {
    const jobs = [
      `row('billing/reverse', json_build_object('id', 'race-rev-' || $1::int, 'of', 'race-tr-' || $1::int), null, null, null, null, null, null)::graphile_worker.job_spec`,
      `row('billing/transfer', json_build_object('id', 'race-tr-' || $1::int, 'from', 'race-a', 'to', 'race-b', 'amount', '1'), null, null, null, null, null, null)::graphile_worker.job_spec`,
    ];
    if (g % 2 === 0) jobs.reverse();
    await database.query(`select graphile_worker.add_jobs(array[${jobs.join(', ')}])`, [g]);
  }
  await drained(database, 60_000);
  const { rows } = await database.query<{ g: string; rev_seq: bigint; tr_seq: bigint; code: string }>(
    `select substr(r.id, 10) as g, r.seq as rev_seq, tr.seq as tr_seq, r.code
     from billing.operations r join billing.operations tr on tr.id = r.reverses
     where r.id like 'race-rev-%'`,
  );
  t.equal(rows.length, pairs);
  const wrong = rows.filter((r) => (r.rev_seq < r.tr_seq ? r.code !== 'operation_not_found' : r.code !== 'ok'));
  t.same(wrong, [], 'operation_not_found exactly when the reversal comes first in seq order');
  const applied = rows.filter((r) => r.code === 'ok').length;
  t.same(await balances('race-a', 'race-b'), [100000n - BigInt(pairs - applied), BigInt(pairs - applied)]);
  t.comment(`${applied} of ${pairs} reversals came after their transfer`);
});

t.test('the database bounds the running total: no write puts back more than the command moved', async (t) => {
  await open('d-a');
  await credit('d-a', '10', 'd-credit');
  await reverse('d-credit', '4');
  const refused = (sql: string) =>
    database.query(sql).then(
      () => 'accepted',
      (error: pg.DatabaseError) => error.constraint ?? error.message,
    );
  t.equal(
    await refused("update billing.reversal_totals set reversed = reversed + 7 where operation_id = 'd-credit'"),
    'reversed_within_total',
  );
  t.equal(
    await refused(
      "insert into billing.reversal_totals (operation_id, total, reversed) values ('d-credit', 10, 7) on conflict (operation_id) do update set reversed = billing.reversal_totals.reversed + excluded.reversed",
    ),
    'reversed_within_total',
  );
  t.equal(
    await refused("update billing.operations set reverses = 'd-credit' where id = 'd-credit'"),
    'reverses_only_reversals',
  );
});

t.test('an unknown id as `of`, and a missing one', async (t) => {
  const missing = await run(database, 'reverse', { id: nextId('rev') });
  t.same([missing.code, missing.message], ['invalid_command', 'of: is required']);
  const jobId = await enqueue(database, 'reverse', { id: 'u-rev', of: 'job:123456789' });
  t.ok(jobId);
  t.equal((await resultOf(database, 'u-rev')).code, 'operation_not_found', 'a derived id may be named');
});

t.test('billing verify checks the running totals against the reversals', async (t) => {
  await open('v-a');
  await open('v-b');
  await credit('v-a', '100');
  await run(database, 'transfer', { id: 'v-transfer', from: 'v-a', to: 'v-b', amount: '100' });
  await reverse('v-transfer', '40');
  await reverse('v-transfer', '60');
  const ok = await runCli(['verify'], { DATABASE_URL: database.url });
  t.equal(ok.code, 0, ok.stdout + ok.stderr);
  t.match(ok.stdout, /ok +what reversals put back of each command is its running total/);
  await database.query("update billing.reversal_totals set reversed = reversed - 1 where operation_id = 'v-transfer'");
  const broken = await runCli(['verify'], { DATABASE_URL: database.url });
  t.not(broken.code, 0);
  t.match(broken.stdout, /v-transfer: reversal_totals says 99, its applied reversals put back 100/);
  await database.query("update billing.reversal_totals set reversed = reversed + 1 where operation_id = 'v-transfer'");
});
