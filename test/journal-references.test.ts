// The journal's references are checked once per statement (sql/0015): an entry whose account or
// operation is missing fails its statement, as the foreign keys made it fail, and the rows entries
// refer to are never deleted nor renamed. Run as the owner, whom no privilege stops.
import type pg from 'pg';
import t from 'tap';
import { verifyLedger } from '../src/ledger/verify.ts';
import { createTestDatabase } from './helpers/database.ts';

const database = await createTestDatabase('journal_refs');
t.teardown(() => database.drop());

const entryColumns = 'operation_id, account, balance_delta, held_delta, balance_after, held_after';

async function failure(statement: string): Promise<pg.DatabaseError | undefined> {
  return database.query(statement).then(
    () => undefined,
    (error: pg.DatabaseError) => error,
  );
}

await database.query(`insert into billing.accounts (account, currency) values ('jr-a', 'USD'), ('jr-b', 'USD')`);
await database.query(
  `insert into billing.operations (id, type, status, code, request, fingerprint) values ('jr-op', 'credit', 'applied', 'ok', '{}', 'f')`,
);

t.test('an entry for an account that does not exist fails its statement', async (t) => {
  const error = await failure(
    `insert into billing.entries (${entryColumns}) values ('jr-op', 'jr-nobody', 5, 0, 5, 0)`,
  );
  t.equal(error?.code, '23503', 'foreign_key_violation');
  t.match(error?.message, /journal entry for account jr-nobody, which does not exist/);
});

t.test('an entry for an operation that does not exist fails its statement', async (t) => {
  const error = await failure(
    `insert into billing.entries (${entryColumns}) values ('jr-nothing', 'jr-a', 5, 0, 5, 0)`,
  );
  t.equal(error?.code, '23503', 'foreign_key_violation');
  t.match(error?.message, /journal entry for operation jr-nothing, which does not exist/);
});

t.test('one orphan among many fails the whole statement, and nothing of it is kept', async (t) => {
  const error = await failure(
    `insert into billing.entries (${entryColumns})
     select 'jr-op', case when g = 300 then 'jr-nobody' else 'jr-a' end, 1, 0, g, 0 from generate_series(1, 400) as g`,
  );
  t.equal(error?.code, '23503');
  const { rows } = await database.query<{ n: string }>(`select count(*)::text as n from billing.entries`);
  t.equal(rows[0]!.n, '0');
});

t.test('an operation and its entries written by one statement pass, as the worker writes a batch', async (t) => {
  await database.query(
    `with op as (insert into billing.operations (id, type, status, code, request, fingerprint)
                 values ('jr-op-2', 'transfer', 'applied', 'ok', '{}', 'f') returning id)
     insert into billing.entries (${entryColumns})
     values ('jr-op-2', 'jr-a', 3, 0, 3, 0), ('jr-op-2', 'jr-b', 3, 0, 3, 0)`,
  );
  const { rows } = await database.query<{ n: string }>(
    `select count(*)::text as n from billing.entries where operation_id = 'jr-op-2'`,
  );
  t.equal(rows[0]!.n, '2');
});

t.test('accounts and results are never deleted nor renamed', async (t) => {
  for (const statement of [
    `delete from billing.accounts where account = 'jr-b'`,
    `update billing.accounts set account = 'jr-c' where account = 'jr-b'`,
    `delete from billing.operations where id = 'jr-op'`,
    `update billing.operations set id = 'jr-op-3' where id = 'jr-op'`,
  ]) {
    const error = await failure(statement);
    t.equal(error?.code, '23001', `${statement}: restrict_violation`);
    t.match(error?.message, /rows are never deleted and their ids never change/);
  }
  await database.query(`update billing.accounts set currency = 'EUR' where account = 'jr-b'`);
  t.pass('a change that keeps the id goes through');
});

t.test('billing verify names a missing reference check, and an entry whose account is gone', async (t) => {
  await database.query(`alter table billing.entries disable trigger entries_references_exist`);
  await database.query(`alter table billing.accounts disable trigger accounts_stay`);
  t.teardown(async () => {
    await database.query(`alter table billing.entries enable trigger entries_references_exist`);
    await database.query(`alter table billing.accounts enable trigger accounts_stay`);
  });
  await database.query(`insert into billing.accounts (account, currency) values ('jr-gone', 'USD')`);
  await database.query(`insert into billing.entries (${entryColumns}) values ('jr-op', 'jr-gone', 5, 0, 5, 0)`);
  await database.query(`delete from billing.accounts where account = 'jr-gone'`);
  const report = await verifyLedger(database.db);
  t.equal(report.ok, false);
  t.match(
    report.checks.find((c) => c.name.startsWith('every journal entry names')),
    {
      violations: 1,
      examples: [/^entry \d+: account jr-gone \(missing\), operation jr-op$/],
    },
  );
  t.match(
    report.checks.find((c) => c.name.startsWith('guarding constraints')),
    {
      examples: ['trigger entries_references_exist on billing.entries', 'trigger accounts_stay on billing.accounts'],
    },
  );
});
