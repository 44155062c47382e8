import type { Socket } from 'node:net';
import pg from 'pg';
import t from 'tap';
import { createTestDatabase } from './helpers/database.ts';
import { startTestWorker } from './helpers/worker.ts';
import { waitFor } from './helpers/wait.ts';

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
      'select type, status, code from billing.await_result($1)',
      [id],
    );
    results.push(`${rows[0]!.type} ${rows[0]!.status} ${rows[0]!.code}`);
  }
  t.same(results, ['open_account applied ok', 'open_account applied ok', 'credit applied ok', 'transfer applied ok']);
  const { rows: balances } = await database.query<{ account: string; balance: bigint; journal: bigint }>(
    `select a.account, a.balance, (select sum(balance_delta) from billing.entries e where e.account = a.account) as journal
     from billing.accounts a order by account`,
  );
  t.same(balances, [
    { account: '1', balance: 666n, journal: 666n },
    { account: '2', balance: 111n, journal: 111n },
  ]);
  const { rows: count } = await database.query<{ n: bigint }>('select count(*) as n from billing.operations');
  t.equal(count[0]!.n, 4n, 'four result rows');
});

t.test(
  "await_result times out with SQLSTATE BL001 (not 57014, statement_timeout's) when no worker answers",
  async (t) => {
    await t.rejects(database.query(`select * from billing.await_result('never-sent', 0.2)`), {
      code: 'BL001',
      message: /no result for command never-sent after 0.2 seconds/,
    });
  },
);

t.test('await_result refuses a null or negative timeout at once', async (t) => {
  await t.rejects(database.query(`select * from billing.await_result('x', null)`), {
    code: '22004',
    message: /timeout_seconds must not be null/,
  });
  await t.rejects(database.query(`select * from billing.await_result('x', -1)`), { code: '22023' });
  await t.rejects(database.query(`select * from billing.await_result('x', 'NaN')`), { code: '22023' });
});

t.test('await_result refuses a wait longer than 300 seconds at once, naming the bound', async (t) => {
  await t.rejects(database.query(`select * from billing.await_result('x', 1e9)`), {
    code: '22023',
    message: /timeout_seconds must be at most 300 seconds, got 1000000000/,
  });
  await t.rejects(database.query(`select * from billing.await_result('x', 300.5)`), { code: '22023' });
});

t.test('a wait whose client disconnected ends: its backend leaves pg_stat_activity', async (t) => {
  const session = new pg.Client({ connectionString: database.url });
  session.on('error', () => {});
  await session.connect();
  const { rows } = await session.query<{ pid: number }>('select pg_backend_pid() as pid');
  const pid = rows[0]!.pid;
  session.query(`select * from billing.await_result('never-sent', 300)`).catch(() => {});
  const backend = () =>
    database
      .query<{ state: string }>('select state from pg_stat_activity where pid = $1', [pid])
      .then((result) => result.rows[0]);
  await waitFor('the wait to start', async () => ((await backend())?.state === 'active' ? true : undefined));
  // The client goes away without a word, as a killed process or a dropped connection does.
  (session as unknown as { connection: { stream: Socket } }).connection.stream.destroy();
  await waitFor('its backend to end', async () => ((await backend()) === undefined ? true : undefined), 15_000);
  t.pass(`backend ${pid} ended`);
});

t.test(
  'await_result in the transaction that submitted says so at once, instead of waiting out the timeout',
  async (t) => {
    // As the client role, which cannot read graphile_worker's tables: the check must work for it.
    const session = await database.pool.connect();
    try {
      await session.query('begin');
      await session.query('set local role billing_client');
      await session.query(`select billing.submit('open_account', '{"id": "same-tx", "account": "same-tx"}')`);
      const started = Date.now();
      await t.rejects(session.query(`select * from billing.await_result('same-tx', 60)`), {
        code: 'BL002',
        message: /enqueued by this same transaction/,
      });
      t.ok(Date.now() - started < 30_000, 'at once, not after the 60 s timeout');
      await session.query('rollback');
      // The same wait after a commit returns the result.
      await session.query(`select billing.submit('open_account', '{"id": "same-tx", "account": "same-tx"}')`);
      const { rows } = await session.query<{ code: string }>(`select code from billing.await_result('same-tx', 60)`);
      t.same(rows, [{ code: 'ok' }]);
    } finally {
      await session.query('rollback').catch(() => {});
      session.release();
    }
  },
);

t.test('await_result in a REPEATABLE READ snapshot that cannot see the result says so at once', async (t) => {
  const session = await database.pool.connect();
  try {
    await session.query('begin isolation level repeatable read');
    await t.rejects(session.query(`select * from billing.await_result('never-sent', 60)`), { code: 'BL003' });
    await session.query('rollback');
    await session.query('begin isolation level repeatable read');
    const { rows } = await session.query<{ code: string }>(`select code from billing.await_result('demo-pay', 60)`);
    t.same(rows, [{ code: 'ok' }], 'a result already in the snapshot is returned');
  } finally {
    await session.query('rollback').catch(() => {});
    session.release();
  }
});

t.test('await_result is documented: signature, timeout and SQLSTATEs in its comment', async (t) => {
  const { rows } = await database.query<{ comment: string }>(
    `select obj_description('billing.await_result(text, double precision)'::regprocedure, 'pg_proc') as comment`,
  );
  t.match(rows[0]!.comment, /timeout_seconds double precision default 10/);
  for (const code of ['BL001', 'BL002', 'BL003']) t.match(rows[0]!.comment, code);
});
