// transaction and reverse from the outside: the TypeScript client's typed methods, a command's
// reversals (client, SQL, history), the CLI subcommands and their --help, and the metrics.
import t from 'tap';
import { createBillingClient } from '../src/index.ts';
import { createTestDatabase } from './helpers/database.ts';
import { runCli } from './helpers/cli.ts';
import { startTestWorker } from './helpers/worker.ts';

const database = await createTestDatabase('moves_surfaces');
const worker = await startTestWorker(database);
const client = createBillingClient({ connectionString: database.url });
t.teardown(async () => {
  await client.close();
  await worker.stop();
  await database.drop();
});

t.test('client: transaction and reverse resolve with their results; reversalsOf and history', async (t) => {
  for (const account of ['s-alice', 's-shop', 's-fees']) await client.openAccount({ account });
  await client.credit({ account: 's-alice', amount: 1000n });
  const pay = await client.transaction({
    id: 's-pay',
    legs: [
      { from: 's-alice', to: 's-shop', amount: 1000n },
      { from: 's-shop', to: 's-fees', amount: 30n },
    ],
  });
  t.same([pay.type, pay.status, pay.code], ['transaction', 'applied', 'ok']);
  t.same(pay.balances, [
    { account: 's-alice', balance: 0n, held: 0n },
    { account: 's-shop', balance: 970n, held: 0n },
    { account: 's-fees', balance: 30n, held: 0n },
  ]);
  t.notOk('reverses' in pay, 'only a reversal names a reversed command');
  const refund = await client.reverse({ id: 's-refund', of: 's-pay' });
  t.same([refund.type, refund.code], ['reverse', 'ok']);
  t.equal(refund.code === 'id_conflict' ? undefined : refund.reverses, 's-pay');
  const again = await client.reverse({ id: 's-refund-2', of: 's-pay' });
  t.equal(again.code, 'amount_exceeds_remaining');
  t.same(
    (await client.reversalsOf('s-pay')).map((r) => [r.id, r.code, r.reverses]),
    [
      ['s-refund', 'ok', 's-pay'],
      ['s-refund-2', 'amount_exceeds_remaining', 's-pay'],
    ],
  );
  // s-fees is named only in the transaction's legs and in the reversals' moves (the rejected one's too).
  t.same(
    (await client.history('s-fees')).slice(1).map((r) => [r.id, r.type, r.code]),
    [
      ['s-pay', 'transaction', 'ok'],
      ['s-refund', 'reverse', 'ok'],
      ['s-refund-2', 'reverse', 'amount_exceeds_remaining'],
    ],
  );
  t.same(
    (await client.history('s-fees', { before: 'end', limit: 2 })).map((r) => r.id),
    ['s-refund', 's-refund-2'],
  );
  await t.rejects(
    client.transaction({ legs: [{ from: 's-alice', to: 's-shop', amount: 5 as unknown as bigint }] }),
    TypeError,
    'a leg amount that is not a bigint is refused before enqueueing',
  );
});

const env = () => ({ DATABASE_URL: database.url });

t.test('CLI: billing transaction --leg, billing reverse, billing history shows what a reversal reverses', async (t) => {
  for (const account of ['cli-a', 'cli-b']) await client.openAccount({ account });
  const tx = await runCli(
    [
      'transaction',
      '--leg',
      ',cli-a,500',
      '--leg',
      'cli-a,cli-b,200',
      '--leg',
      'cli-b,,50',
      '--id',
      'cli-tx',
      '--json',
    ],
    env(),
  );
  t.equal(tx.code, 0, tx.stderr);
  const result = JSON.parse(tx.stdout) as { code: string; balances: unknown };
  t.same(result.code, 'ok');
  t.same(result.balances, [
    { account: 'cli-a', balance: '300', held: '0' },
    { account: 'cli-b', balance: '150', held: '0' },
  ]);
  const partial = await runCli(['reverse', 'cli-tx', '10'], env());
  t.equal(partial.code, 2, 'rejected: exit code 2');
  t.match(partial.stdout, /rejected not_reversible: amount: a transaction is reversed whole/);
  const whole = await runCli(['reverse', 'cli-tx', '--id', 'cli-undo'], env());
  t.equal(whole.code, 0, whole.stderr);
  t.match(whole.stdout, /reverse {2}cli-undo {2}reverses cli-tx {2}applied ok/);
  const history = await runCli(['history', 'cli-b'], env());
  t.equal(history.code, 0, history.stderr);
  t.match(history.stdout, /transaction {2}cli-tx {2}applied ok/);
  t.match(history.stdout, /reverse {2}cli-undo {2}reverses cli-tx {2}applied ok {2}cli-b=0 cli-a=0/);
  const bad = await runCli(['transaction', '--leg', 'cli-a:cli-b:5'], env());
  t.equal(bad.code, 1);
  t.match(bad.stderr, /FROM,TO,AMOUNT/);
});

t.test('CLI: --help of both subcommands, from their declarations', async (t) => {
  const tx = await runCli(['transaction', '--help'], {});
  t.equal(tx.code, 0);
  t.match(tx.stdout, /--leg <from,to,amount>/);
  t.match(tx.stdout, /billing transaction --leg alice,shop,1000 --leg shop,fees,30/);
  const rev = await runCli(['reverse', '--help'], {});
  t.equal(rev.code, 0);
  t.match(rev.stdout, /Usage: billing reverse \[options\] <of> \[amount\]/);
});

t.test('metrics count both commands by type and code', async (t) => {
  const text = await worker.runtime.metrics.registry.metrics();
  t.match(text, /billing_commands_total\{type="transaction",code="ok"\} [1-9]/);
  t.match(text, /billing_commands_total\{type="reverse",code="amount_exceeds_remaining"\} [1-9]/);
  t.match(text, /billing_commands_total\{type="reverse",code="operation_not_found"\} 0/);
});
