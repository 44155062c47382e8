// The transaction command through real workers (add_job from SQL): several moves as one, in order,
// all or none, each code of its legs, and no deadlock between transactions that name the same
// accounts in opposite orders.
import t from 'tap';
import { createTestDatabase } from './helpers/database.ts';
import { balanceOf, drained, enqueueMany, run, type ResultRow } from './helpers/ledger.ts';
import { startTestWorker } from './helpers/worker.ts';
import { startWorkerProcesses } from './helpers/worker-processes.ts';

const database = await createTestDatabase('transaction');
const worker = await startTestWorker(database);
t.teardown(async () => {
  await worker.stop();
  await database.drop();
});

let counter = 0;
const nextId = (label: string) => `${label}-${++counter}`;
const open = (account: string, currency?: string) =>
  run(database, 'open_account', { id: nextId('open'), account, ...(currency ? { currency } : {}) });
const credit = (account: string, amount: string) => run(database, 'credit', { id: nextId('credit'), account, amount });
const transaction = (legs: unknown, id = nextId('tx')) => run(database, 'transaction', { id, legs });
const balances = async (...accounts: string[]) =>
  Promise.all(accounts.map(async (account) => (await balanceOf(database, account))?.balance));
const entriesOf = async (id: string) =>
  (
    await database.query<{ account: string; balance_delta: bigint; balance_after: bigint }>(
      'select account, balance_delta, balance_after from billing.entries where operation_id = $1 order by id',
      [id],
    )
  ).rows.map((r) => [r.account, r.balance_delta, r.balance_after]);

t.test('a payment with its fee: both legs, in order, one result and one seq', async (t) => {
  for (const account of ['pay-alice', 'pay-shop', 'pay-fees']) await open(account);
  await credit('pay-alice', '1000');
  const result = await transaction(
    [
      { from: 'pay-alice', to: 'pay-shop', amount: '1000' },
      { from: 'pay-shop', to: 'pay-fees', amount: 30 },
    ],
    'pay-order-1',
  );
  t.same([result.type, result.status, result.code, result.message], ['transaction', 'applied', 'ok', null]);
  t.same(result.balances, [
    { account: 'pay-alice', balance: '0', held: '0' },
    { account: 'pay-shop', balance: '970', held: '0' },
    { account: 'pay-fees', balance: '30', held: '0' },
  ]);
  t.same(await balances('pay-alice', 'pay-shop', 'pay-fees'), [0n, 970n, 30n]);
  t.same(
    await entriesOf('pay-order-1'),
    [
      ['pay-alice', -1000n, 0n],
      ['pay-shop', 1000n, 1000n],
      ['pay-shop', -30n, 970n],
      ['pay-fees', 30n, 30n],
    ],
    'one journal entry per side of each leg, in leg order',
  );
  const { rows } = await database.query('select seq from billing.operations where id = $1', ['pay-order-1']);
  t.equal(rows.length, 1, 'one result row');
});

t.test('a later leg spends what an earlier leg brought in; money in and out', async (t) => {
  await open('chain-a');
  await open('chain-b');
  const result = await transaction([
    { to: 'chain-a', amount: '500' },
    { from: 'chain-a', to: 'chain-b', amount: '500' },
    { from: 'chain-b', amount: '120' },
  ]);
  t.equal(result.code, 'ok');
  t.same(await balances('chain-a', 'chain-b'), [0n, 380n]);
  t.same(result.balances, [
    { account: 'chain-a', balance: '0', held: '0' },
    { account: 'chain-b', balance: '380', held: '0' },
  ]);
});

t.test('each code of a leg, for the first leg that fails, named in the message; nothing applies', async (t) => {
  await open('code-a');
  await open('code-b');
  await open('code-eur', 'EUR');
  await open('code-full');
  await credit('code-a', '100');
  await credit('code-full', '9223372036854775807');
  const good = { from: 'code-a', to: 'code-b', amount: '10' };
  const cases: [unknown[], string, RegExp][] = [
    [[good, { from: 'code-b', to: 'code-b', amount: '1' }], 'same_account', /^legs\[1\]: from and to are both code-b$/],
    [
      [good, { from: 'code-b', to: 'code-nobody', amount: '1' }],
      'account_not_found',
      /^legs\[1\]: account code-nobody/,
    ],
    [
      [good, good, { from: 'code-b', to: 'code-eur', amount: '1' }],
      'currency_mismatch',
      /^legs\[2\]: code-b is in USD/,
    ],
    // The second leg may spend the 10 the first brought to code-b, not 11.
    [
      [good, { from: 'code-b', amount: '11' }],
      'insufficient_funds',
      /^legs\[1\]: account code-b has 10 available, 11 needed$/,
    ],
    [[good, { to: 'code-full', amount: '1' }], 'overflow', /^legs\[1\]: balance of code-full would exceed/],
  ];
  for (const [legs, code, message] of cases) {
    const result = await transaction(legs);
    t.same([result.status, result.code], ['rejected', code], code);
    t.match(result.message, message, `${code}: the message names the leg`);
    t.same(result.balances, []);
  }
  t.same(await balances('code-a', 'code-b'), [100n, 0n], 'no leg of a rejected transaction applied');
  const { rows } = await database.query(
    "select 1 from billing.entries e join billing.operations o on o.id = e.operation_id where o.type = 'transaction' and e.account like 'code-%'",
  );
  t.equal(rows.length, 0, 'and wrote no journal entry');
});

t.test('legs that are not 1 to 64 of {from?, to?, amount}: invalid_command naming the field', async (t) => {
  const leg = { from: 'x', to: 'y', amount: '1' };
  const cases: [unknown, RegExp][] = [
    [[], /^legs: must have at least one leg$/],
    [Array.from({ length: 65 }, () => leg), /^legs: must have at most 64 legs$/],
    [[leg, { amount: '1' }], /^legs\.1: needs from, to or both$/],
    [[{ ...leg, amount: '1.5' }], /^legs\.0\.amount: /],
    [[{ ...leg, note: 'x' }], /^note: unknown field$/],
    ['x', /^legs: must be an array of legs$/],
    [undefined, /^legs: is required$/],
  ];
  for (const [legs, message] of cases) {
    const result: ResultRow = await run(database, 'transaction', {
      id: nextId('bad'),
      ...(legs === undefined ? {} : { legs }),
    });
    t.same([result.status, result.code], ['rejected', 'invalid_command']);
    t.match(result.message, message);
  }
  // 64 legs are accepted.
  await open('many-a');
  await open('many-b');
  await credit('many-a', '64');
  const result = await transaction(Array.from({ length: 64 }, () => ({ from: 'many-a', to: 'many-b', amount: '1' })));
  t.equal(result.code, 'ok');
  t.same(await balances('many-a', 'many-b'), [0n, 64n]);
});

t.test('many transactions over the same accounts, in both orders at once, on three workers: no deadlock', async (t) => {
  for (const account of ['dl-a', 'dl-b', 'dl-c']) {
    await open(account);
    await credit(account, '1000000');
  }
  // Two more worker processes besides this one's: each has its own pool and batches.
  const workers = startWorkerProcesses(database, 2);
  t.teardown(() => workers.stop());
  const count = 600;
  // Odd: a -> b -> c; even: c -> b -> a. Each one's legs name the accounts in the other's reverse order.
  await enqueueMany(
    database,
    'billing/transaction',
    count,
    `json_build_object('id', 'dl-' || g, 'legs', case when g % 2 = 1
       then json_build_array(json_build_object('from', 'dl-a', 'to', 'dl-b', 'amount', '1'),
                             json_build_object('from', 'dl-b', 'to', 'dl-c', 'amount', '1'))
       else json_build_array(json_build_object('from', 'dl-c', 'to', 'dl-b', 'amount', '1'),
                             json_build_object('from', 'dl-b', 'to', 'dl-a', 'amount', '1')) end)`,
  );
  await drained(database, 60_000);
  const { rows } = await database.query<{ code: string; n: bigint }>(
    "select code, count(*) as n from billing.operations where id like 'dl-%' and type = 'transaction' group by code",
  );
  t.same(
    rows.map((r) => [r.code, r.n]),
    [['ok', BigInt(count)]],
    'every one applied',
  );
  const jobsOf = await database.query<{ n: bigint }>(
    "select count(distinct job_id) as n from billing.operations where id like 'dl-%'",
  );
  t.equal(jobsOf.rows[0]!.n, BigInt(count), 'each by its own job');
  // A deadlock fails its batch: the worker logs the fault (40P01) and graphile-worker retries the jobs.
  t.notMatch(workers.logs(), /deadlock|will retry/, 'no batch failed');
  t.same(await balances('dl-a', 'dl-b', 'dl-c'), [1000000n, 1000000n, 1000000n], 'half each way: back where they were');
});
