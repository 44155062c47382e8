import t from 'tap';
import { createTestDatabase } from './helpers/database.ts';
import { startTestWorker } from './helpers/worker.ts';

// The original task from SQL alone, as the README shows it: each command is enqueued, then its
// result awaited, statement by statement, as psql runs a script.
const database = await createTestDatabase('sql_demo');
const worker = await startTestWorker(database);
t.teardown(async () => {
  await worker.stop();
  await database.drop();
});

t.test('open 1 and 2, credit 777 to 1, transfer 111 from 1 to 2, from SQL alone', async (t) => {
  const steps: [string, string, string][] = [
    ['demo-open-1', 'open_account', `{"id": "demo-open-1", "account": "1"}`],
    ['demo-open-2', 'open_account', `{"id": "demo-open-2", "account": "2"}`],
    ['demo-credit', 'credit', `{"id": "demo-credit", "account": "1", "amount": "777"}`],
    ['demo-pay', 'transfer', `{"id": "demo-pay", "from": "1", "to": "2", "amount": "111"}`],
  ];
  const results: string[] = [];
  for (const [id, type, payload] of steps) {
    await database.query(`select billing.submit($1, $2::json)`, [type, payload]);
    const { rows } = await database.query<{ type: string; status: string; code: string }>(
      'select type, status, code from billing.await_result($1)', [id]);
    results.push(`${rows[0]!.type} ${rows[0]!.status} ${rows[0]!.code}`);
  }
  t.same(results, ['open_account applied ok', 'open_account applied ok', 'credit applied ok', 'transfer applied ok']);
  const { rows: balances } = await database.query<{ account: string; balance: bigint; journal: bigint }>(
    `select a.account, a.balance, (select sum(balance_delta) from billing.entries e where e.account = a.account) as journal
     from billing.accounts a order by account`);
  t.same(balances, [{ account: '1', balance: 666n, journal: 666n }, { account: '2', balance: 111n, journal: 111n }]);
  const { rows: count } = await database.query<{ n: bigint }>('select count(*) as n from billing.operations');
  t.equal(count[0]!.n, 4n, 'four result rows');
});

t.test('await_result times out with a clear error when no worker answers', async (t) => {
  await t.rejects(database.query(`select * from billing.await_result('never-sent', 0.2)`), /no result for command never-sent/);
});
