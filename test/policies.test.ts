// Account policies (SPEC 2.1): set_limits, freeze, unfreeze and close_account through add_job on a
// real worker, each of their codes; what every other command does under them; the database's own
// refusal of a row outside its limits (as the worker role); and a database migrated from 0023.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { parseCommand } from '../src/commands/parse.ts';
import { roleNamesFromEnv, sqlDirectory } from '../src/db/migrate.ts';
import { applyBatch } from '../src/ledger/apply.ts';
import type { BatchItem } from '../src/ledger/plan.ts';
import { verifyLedger } from '../src/ledger/verify.ts';
import { createTestDatabase } from './helpers/database.ts';
import { balanceOf, resultOf, run } from './helpers/ledger.ts';
import { createLogins } from './helpers/logins.ts';
import { startTestWorker } from './helpers/worker.ts';

// Each test makes its own accounts and ids, so that any one of them can run alone.
const database = await createTestDatabase('policies');
const worker = await startTestWorker(database);
const logins = await createLogins(database, 'pol', { worker: roleNamesFromEnv().worker });
t.teardown(async () => {
  await worker.stop();
  await logins.drop(() => database.drop());
});

let counter = 0;
const send = async (type: string, payload: Record<string, unknown>) => {
  const result = await run(database, type, { id: `${type}-${++counter}`, ...payload });
  return result.code;
};
const open = (account: string, currency?: string) =>
  send('open_account', { account, ...(currency ? { currency } : {}) });
const credit = (account: string, amount: string) => send('credit', { account, amount });
const debit = (account: string, amount: string) => send('debit', { account, amount });
const transfer = (from: string, to: string, amount: string) => send('transfer', { from, to, amount });
const hold = (account: string, amount: string, holdId: string) => send('hold', { account, amount, hold: holdId });
const policyOf = async (account: string) => {
  const { rows } = await database.query<{ overdraft_limit: bigint; max_balance: bigint | null; status: string }>(
    'select overdraft_limit, max_balance, status from billing.accounts where account = $1',
    [account],
  );
  return rows[0];
};

t.test('a new account is open, with no overdraft and no ceiling', async (t) => {
  t.equal(await open('p-new'), 'ok');
  t.same(await policyOf('p-new'), { overdraft_limit: 0n, max_balance: null, status: 'open' });
});

t.test('set_limits: ok, account_not_found, account_closed, limit_below_usage, invalid_command', async (t) => {
  await open('sl-1');
  await credit('sl-1', '100');
  t.equal(await send('set_limits', { account: 'sl-missing', overdraft_limit: '5' }), 'account_not_found');
  t.equal(await send('set_limits', { account: 'sl-1', overdraft_limit: '50' }), 'ok');
  t.same(await policyOf('sl-1'), { overdraft_limit: 50n, max_balance: null, status: 'open' });
  t.equal(await debit('sl-1', '151'), 'insufficient_funds', 'the overdraft is the limit');
  t.equal(await debit('sl-1', '130'), 'ok', 'available goes below zero, within the overdraft');
  t.same(await balanceOf(database, 'sl-1'), { balance: -30n, held: 0n, available: -30n });
  t.equal(await send('set_limits', { account: 'sl-1', overdraft_limit: 29 }), 'limit_below_usage');
  t.same(await policyOf('sl-1'), { overdraft_limit: 50n, max_balance: null, status: 'open' }, 'nothing changed');
  t.equal(await send('set_limits', { account: 'sl-1', overdraft_limit: '30', max_balance: '0' }), 'ok', 'exactly');
  t.same(await policyOf('sl-1'), { overdraft_limit: 30n, max_balance: 0n, status: 'open' });
  t.equal(await credit('sl-1', '31'), 'limit_exceeded', 'the ceiling counts the balance, not available');
  t.equal(await credit('sl-1', '30'), 'ok');
  t.equal(await send('set_limits', { account: 'sl-1', max_balance: null }), 'ok', 'null removes the ceiling');
  t.same(await policyOf('sl-1'), { overdraft_limit: 30n, max_balance: null, status: 'open' }, 'the overdraft kept');
  await credit('sl-1', '10');
  t.equal(await send('set_limits', { account: 'sl-1', max_balance: '9' }), 'limit_below_usage');
  t.equal(await send('set_limits', { account: 'sl-1' }), 'invalid_command', 'neither limit given');
  t.equal(await send('set_limits', { account: 'sl-1', overdraft_limit: '-1' }), 'invalid_command');
  t.equal(await send('set_limits', { account: 'sl-1', max_balance: 1.5 }), 'invalid_command');
  await open('sl-closed');
  await send('close_account', { account: 'sl-closed' });
  t.equal(await send('set_limits', { account: 'sl-closed', overdraft_limit: '5' }), 'account_closed');
});

t.test('a hold may use the overdraft; capture and release of it', async (t) => {
  await open('od-h');
  await send('set_limits', { account: 'od-h', overdraft_limit: '40' });
  t.equal(await hold('od-h', '41', 'od-h-1'), 'insufficient_funds');
  t.equal(await hold('od-h', '40', 'od-h-1'), 'ok');
  t.same(await balanceOf(database, 'od-h'), { balance: 0n, held: 40n, available: -40n });
  t.equal(await send('capture', { hold: 'od-h-1', amount: '15' }), 'ok');
  t.same(await balanceOf(database, 'od-h'), { balance: -15n, held: 0n, available: -15n });
});

t.test(
  'an overdraft near 2^63 cannot take held past the bigint: overflow, not a batch that fails forever',
  async (t) => {
    const max = '9223372036854775807';
    await open('od-max');
    await credit('od-max', max);
    t.equal(await send('set_limits', { account: 'od-max', overdraft_limit: max }), 'ok');
    t.equal(await hold('od-max', max, 'od-max-1'), 'ok');
    t.equal(await hold('od-max', '1', 'od-max-2'), 'overflow');
    t.equal(await debit('od-max', max), 'ok', 'the overdraft itself is there to use');
    t.same(await balanceOf(database, 'od-max'), { balance: 0n, held: BigInt(max), available: -BigInt(max) });
  },
);

t.test('freeze / unfreeze: no money out of a frozen account; money in, release and expiry work', async (t) => {
  await open('fz-1');
  await open('fz-2');
  await credit('fz-1', '100');
  t.equal(await hold('fz-1', '10', 'fz-hold-a'), 'ok');
  t.equal(await hold('fz-1', '10', 'fz-hold-b'), 'ok');
  t.equal(await send('hold', { account: 'fz-1', amount: '5', hold: 'fz-hold-c', ttl_seconds: 1 }), 'ok');
  t.equal(await send('freeze', { account: 'fz-missing' }), 'account_not_found');
  t.equal(await send('unfreeze', { account: 'fz-missing' }), 'account_not_found');
  t.equal(await send('freeze', { account: 'fz-1' }), 'ok');
  t.equal((await policyOf('fz-1'))!.status, 'frozen');
  t.equal(await send('freeze', { account: 'fz-1' }), 'ok', 'frozen again: nothing changes');
  t.equal(await debit('fz-1', '1'), 'account_frozen');
  t.equal(await transfer('fz-1', 'fz-2', '1'), 'account_frozen');
  t.equal(await hold('fz-1', '1', 'fz-hold-d'), 'account_frozen');
  t.equal(await send('capture', { hold: 'fz-hold-a' }), 'account_frozen');
  t.equal(await send('capture', { hold: 'fz-hold-a', to: 'fz-2' }), 'account_frozen');
  t.equal(await debit('fz-1', '1000'), 'account_frozen', 'frozen is checked before the money');
  t.equal(await credit('fz-1', '7'), 'ok', 'money in');
  await credit('fz-2', '3');
  t.equal(await transfer('fz-2', 'fz-1', '3'), 'ok', 'a transfer to it');
  t.equal(await send('release', { hold: 'fz-hold-b' }), 'ok', 'release');
  t.equal((await resultOf(database, 'expire:fz-hold-c')).code, 'ok', 'the expiry of a hold on a frozen account');
  t.same(await balanceOf(database, 'fz-1'), { balance: 110n, held: 10n, available: 100n });
  t.equal(await send('unfreeze', { account: 'fz-1' }), 'ok');
  t.equal(await send('unfreeze', { account: 'fz-1' }), 'ok', 'open again: nothing changes');
  t.equal(await debit('fz-1', '1'), 'ok');
  t.equal(await send('capture', { hold: 'fz-hold-a', to: 'fz-2' }), 'ok');
  await open('fz-closed');
  await send('close_account', { account: 'fz-closed' });
  t.equal(await send('freeze', { account: 'fz-closed' }), 'account_closed');
  t.equal(await send('unfreeze', { account: 'fz-closed' }), 'account_closed');
});

t.test('close_account: account_not_found, account_not_empty, ok, account_closed', async (t) => {
  await open('cl-1');
  await open('cl-2');
  t.equal(await send('close_account', { account: 'cl-missing' }), 'account_not_found');
  await credit('cl-1', '10');
  t.equal(await send('close_account', { account: 'cl-1' }), 'account_not_empty', 'a balance');
  await hold('cl-1', '10', 'cl-hold');
  await send('capture', { hold: 'cl-hold', amount: '10', to: 'cl-2' });
  t.same(await balanceOf(database, 'cl-1'), { balance: 0n, held: 0n, available: 0n });
  await send('set_limits', { account: 'cl-1', overdraft_limit: '5' });
  await hold('cl-1', '5', 'cl-hold-2');
  t.equal(await send('close_account', { account: 'cl-1' }), 'account_not_empty', 'held');
  await send('release', { hold: 'cl-hold-2' });
  t.equal(await send('close_account', { account: 'cl-1' }), 'ok');
  t.equal((await policyOf('cl-1'))!.status, 'closed');
  t.equal(await send('close_account', { account: 'cl-1' }), 'account_closed');
});

t.test('every command that names a closed account ends account_closed; it is never reopened', async (t) => {
  await open('cx-1');
  await open('cx-2');
  await credit('cx-2', '50');
  await hold('cx-2', '5', 'cx-hold');
  t.equal(await send('close_account', { account: 'cx-1' }), 'ok');
  t.equal(await open('cx-1'), 'account_closed', 'open_account of a closed account');
  t.equal(await open('cx-1', 'EUR'), 'account_closed');
  t.equal(await credit('cx-1', '1'), 'account_closed');
  t.equal(await debit('cx-1', '1'), 'account_closed');
  t.equal(await transfer('cx-1', 'cx-2', '1'), 'account_closed');
  t.equal(await transfer('cx-2', 'cx-1', '1'), 'account_closed');
  t.equal(await transfer('cx-2', 'cx-1', '1000'), 'account_closed', 'before the money is counted');
  t.equal(await hold('cx-1', '1', 'cx-hold-2'), 'account_closed');
  t.equal(await send('capture', { hold: 'cx-hold', to: 'cx-1' }), 'account_closed');
  t.equal(await send('freeze', { account: 'cx-1' }), 'account_closed');
  t.equal(await send('set_limits', { account: 'cx-1', max_balance: null }), 'account_closed');
  t.equal(await transfer('cx-1', 'cx-1', '1'), 'same_account', 'the request alone is judged first');
  t.same(await balanceOf(database, 'cx-2'), { balance: 50n, held: 5n, available: 45n });
});

t.test('limit_exceeded: credit, transfer to, capture to; a capture back to its own account', async (t) => {
  await open('mx-1');
  await open('mx-2');
  await credit('mx-1', '100');
  await credit('mx-2', '10');
  t.equal(await send('set_limits', { account: 'mx-2', max_balance: '20' }), 'ok');
  t.equal(await credit('mx-2', '11'), 'limit_exceeded');
  t.equal(await transfer('mx-1', 'mx-2', '11'), 'limit_exceeded');
  await hold('mx-1', '11', 'mx-hold');
  t.equal(await send('capture', { hold: 'mx-hold', to: 'mx-2' }), 'limit_exceeded');
  const upTo = await run(database, 'capture', { id: 'mx-capture-10', hold: 'mx-hold', amount: '10', to: 'mx-2' });
  t.equal(upTo.code, 'ok', `up to the ceiling exactly: ${upTo.message}`);
  t.same(await balanceOf(database, 'mx-2'), { balance: 20n, held: 0n, available: 20n });
  t.equal(await send('set_limits', { account: 'mx-1', max_balance: '90' }), 'ok', 'its balance exactly');
  await hold('mx-1', '9', 'mx-hold-2');
  t.equal(await send('capture', { hold: 'mx-hold-2', to: 'mx-1' }), 'ok', 'back to its own account: the balance stays');
  t.same(await balanceOf(database, 'mx-1'), { balance: 90n, held: 0n, available: 90n });
});

t.test(
  'transaction: account_frozen, account_closed, limit_exceeded for the first leg that fails; nothing applies',
  async (t) => {
    await open('tp-a');
    await open('tp-b');
    await open('tp-frozen');
    await open('tp-closed');
    await open('tp-cap');
    await open('tp-eur', 'EUR');
    await credit('tp-a', '100');
    await credit('tp-frozen', '50');
    t.equal(await send('set_limits', { account: 'tp-cap', max_balance: '20' }), 'ok');
    t.equal(await send('freeze', { account: 'tp-frozen' }), 'ok');
    t.equal(await send('close_account', { account: 'tp-closed' }), 'ok');
    const transaction = (legs: unknown[]) => run(database, 'transaction', { id: `transaction-${++counter}`, legs });
    const good = { from: 'tp-a', to: 'tp-b', amount: '10' };
    const cases: [unknown[], string, string][] = [
      [
        [good, { from: 'tp-frozen', to: 'tp-b', amount: '1' }],
        'account_frozen',
        'legs[1]: account tp-frozen is frozen: no money leaves it',
      ],
      [
        [good, { from: 'tp-frozen', amount: '1' }],
        'account_frozen',
        'legs[1]: account tp-frozen is frozen: no money leaves it',
      ],
      [
        [good, { from: 'tp-a', to: 'tp-closed', amount: '1' }],
        'account_closed',
        'legs[1]: account tp-closed is closed',
      ],
      [[good, { to: 'tp-closed', amount: '1' }], 'account_closed', 'legs[1]: account tp-closed is closed'],
      [[{ from: 'tp-closed', to: 'tp-eur', amount: '1' }], 'account_closed', 'legs[0]: account tp-closed is closed'],
      [
        [good, { from: 'tp-a', to: 'tp-cap', amount: '21' }],
        'limit_exceeded',
        'legs[1]: balance of tp-cap would be 21, above its max_balance 20',
      ],
      // The second leg counts what the first brought in: 15 + 6 is above the ceiling of 20.
      [
        [
          { from: 'tp-a', to: 'tp-cap', amount: '15' },
          { to: 'tp-cap', amount: '6' },
        ],
        'limit_exceeded',
        'legs[1]: balance of tp-cap would be 21, above its max_balance 20',
      ],
    ];
    for (const [legs, code, message] of cases) {
      const result = await transaction(legs);
      t.same([result.status, result.code, result.message], ['rejected', code, message], code);
    }
    const all = ['tp-a', 'tp-b', 'tp-frozen', 'tp-cap'];
    const balances = async () => Promise.all(all.map(async (a) => (await balanceOf(database, a))?.balance));
    t.same(await balances(), [100n, 0n, 50n, 0n], 'no leg of a rejected transaction applied');
    const upTo = await transaction([
      { from: 'tp-a', to: 'tp-cap', amount: '15' },
      { from: 'tp-a', to: 'tp-cap', amount: '5' },
      { from: 'tp-a', to: 'tp-frozen', amount: '1' },
    ]);
    t.equal(upTo.code, 'ok', `up to the ceiling exactly, and money into a frozen account: ${upTo.message}`);
    t.same(await balances(), [79n, 0n, 51n, 20n]);
  },
);

t.test(
  'reverse: account_frozen, account_closed, limit_exceeded for a move it would put back; nothing applies',
  async (t) => {
    await open('rp-a');
    await open('rp-b');
    await open('rp-c');
    await credit('rp-a', '100');
    t.equal(await send('transfer', { id: 'rp-transfer', from: 'rp-a', to: 'rp-b', amount: '30' }), 'ok');
    await credit('rp-c', '5');
    t.equal(await send('debit', { id: 'rp-debit', account: 'rp-c', amount: '5' }), 'ok');
    const reverse = (of: string, amount?: string) =>
      run(database, 'reverse', { id: `reverse-${++counter}`, of, ...(amount === undefined ? {} : { amount }) });
    const outcome = async (of: string, amount?: string) => {
      const result = await reverse(of, amount);
      return [result.code, result.message];
    };

    t.equal(await send('freeze', { account: 'rp-b' }), 'ok');
    t.same(
      await outcome('rp-transfer'),
      ['account_frozen', 'reversing rp-transfer: account rp-b is frozen: no money leaves it'],
      'taking back from a frozen account',
    );
    t.same(await outcome('rp-transfer', '1'), [
      'account_frozen',
      'reversing rp-transfer: account rp-b is frozen: no money leaves it',
    ]);
    t.equal(await send('unfreeze', { account: 'rp-b' }), 'ok');

    t.equal(await send('close_account', { account: 'rp-c' }), 'ok');
    t.same(
      await outcome('rp-debit'),
      ['account_closed', 'reversing rp-debit: account rp-c is closed'],
      'putting into a closed account',
    );

    t.equal(await send('set_limits', { account: 'rp-a', max_balance: '75' }), 'ok');
    t.same(
      await outcome('rp-transfer'),
      ['limit_exceeded', 'reversing rp-transfer: balance of rp-a would be 100, above its max_balance 75'],
      'putting back above a ceiling',
    );
    const rejected = await database.query(
      "select 1 from billing.entries e join billing.operations o on o.id = e.operation_id where o.type = 'reverse' and e.account like 'rp-%'",
    );
    t.equal(rejected.rows.length, 0, 'no rejected reversal wrote a journal entry');
    t.same(await balanceOf(database, 'rp-a'), { balance: 70n, held: 0n, available: 70n });
    t.same(await balanceOf(database, 'rp-b'), { balance: 30n, held: 0n, available: 30n });
    t.same(await outcome('rp-transfer', '5'), ['ok', null], 'a part up to the ceiling exactly');
    t.same(await outcome('rp-transfer', '1'), [
      'limit_exceeded',
      'reversing rp-transfer: balance of rp-a would be 76, above its max_balance 75',
    ]);
    t.same(await balanceOf(database, 'rp-a'), { balance: 75n, held: 0n, available: 75n });
  },
);

t.test('one batch transaction: each command decided under the policies of the ones before it', async (t) => {
  const item = (task: string, payload: object, id: string): BatchItem => ({
    parsed: parseCommand({ task: task as never, payload: { id, ...payload }, defaultId: id, defaultCurrency: 'USD' }),
    jobId: null,
  });
  const { outcomes } = await applyBatch(database.pool, [
    item('open_account', { account: 'bt-1' }, 'bt-open'),
    item('set_limits', { account: 'bt-1', overdraft_limit: '30', max_balance: '50' }, 'bt-limits'),
    item('debit', { account: 'bt-1', amount: '20' }, 'bt-debit-1'),
    item('freeze', { account: 'bt-1' }, 'bt-freeze'),
    item('debit', { account: 'bt-1', amount: '1' }, 'bt-debit-2'),
    item('credit', { account: 'bt-1', amount: '71' }, 'bt-credit-1'),
    item('credit', { account: 'bt-1', amount: '70' }, 'bt-credit-2'),
    item('unfreeze', { account: 'bt-1' }, 'bt-unfreeze'),
    item('debit', { account: 'bt-1', amount: '81' }, 'bt-debit-3'),
    item('debit', { account: 'bt-1', amount: '79' }, 'bt-debit-4'),
    item('close_account', { account: 'bt-1' }, 'bt-close-1'),
  ]);
  t.same(
    outcomes.map((o) => (o.kind === 'recorded' ? o.result.code : o.kind)),
    [
      'ok',
      'ok',
      'ok',
      'ok',
      'account_frozen',
      'limit_exceeded',
      'ok',
      'ok',
      'insufficient_funds',
      'ok',
      'account_not_empty',
    ],
  );
  // The account was created in this batch: inserted with the policy the batch left it.
  t.same(await policyOf('bt-1'), { overdraft_limit: 30n, max_balance: 50n, status: 'open' });
  t.same(await balanceOf(database, 'bt-1'), { balance: -29n, held: 0n, available: -29n });
  const { rows } = await database.query<{ balance_after: bigint; overdraft_limit: bigint; max_balance: bigint }>(
    "select balance_after, overdraft_limit, max_balance from billing.entries where account = 'bt-1' order by id",
  );
  t.same(
    rows.map((r) => [r.balance_after, r.overdraft_limit, r.max_balance]),
    [
      [-20n, 30n, 50n],
      [50n, 30n, 50n],
      [-29n, 30n, 50n],
    ],
    'each entry carries the limits it was written under',
  );
  t.ok((await verifyLedger(database.db)).ok);
});

t.test('the database refuses a row outside its limits, even from the worker role', async (t) => {
  await open('db-lim');
  await credit('db-lim', '10');
  await send('set_limits', { account: 'db-lim', overdraft_limit: '5', max_balance: '100' });
  await open('db-closed');
  await send('close_account', { account: 'db-closed' });
  const session = await logins.connectAs(logins.users.worker);
  const refused = async (statement: string, constraint: string) => {
    const error = await session.query(statement).then(
      () => undefined,
      (e: { code?: string; constraint?: string }) => e,
    );
    t.equal(error?.code, '23514', `${statement}: check_violation`);
    t.equal(error?.constraint, constraint, constraint);
  };
  await refused("update billing.accounts set balance = -6 where account = 'db-lim'", 'available_within_overdraft');
  await refused("update billing.accounts set held = 16 where account = 'db-lim'", 'available_within_overdraft');
  await refused("update billing.accounts set balance = 101 where account = 'db-lim'", 'balance_within_max');
  await refused(
    "update billing.accounts set overdraft_limit = -1 where account = 'db-lim'",
    'overdraft_limit_not_negative',
  );
  await refused("update billing.accounts set held = -1 where account = 'db-lim'", 'held_not_negative');
  await refused("update billing.accounts set balance = 1 where account = 'db-closed'", 'closed_is_empty');
  await refused("update billing.accounts set status = 'gone' where account = 'db-lim'", 'status_known');
  await refused(
    `insert into billing.entries (operation_id, account, balance_delta, held_delta, balance_after, held_after, overdraft_limit)
     values ('x', 'db-lim', -16, 0, -6, 0, 5)`,
    'entry_within_limits',
  );
  await refused(
    `insert into billing.entries (operation_id, account, balance_delta, held_delta, balance_after, held_after, max_balance)
     values ('x', 'db-lim', 1, 0, 101, 0, 100)`,
    'entry_within_limits',
  );
  const ok = await session.query(
    "update billing.accounts set balance = -5 where account = 'db-lim' returning available",
  );
  t.same(ok.rows, [{ available: '-5' }], 'exactly at the overdraft is allowed');
  await session.query("update billing.accounts set balance = 10 where account = 'db-lim'");
  t.ok((await verifyLedger(database.db)).ok, 'and put back');
});

t.test('verify: clean with an overdraft in use; a row or an entry outside its limits is a breach', async (t) => {
  await open('vf-od');
  await open('vf-max');
  await send('set_limits', { account: 'vf-od', overdraft_limit: '20' });
  await debit('vf-od', '20');
  await send('set_limits', { account: 'vf-od', overdraft_limit: '25' });
  await send('set_limits', { account: 'vf-max', max_balance: '100' });
  await credit('vf-max', '50');
  const clean = await verifyLedger(database.db);
  t.ok(clean.ok, JSON.stringify(clean.checks.filter((c) => c.violations)));
  // A DBA drops the guards and breaks the rules they kept: verify names both.
  await database.query('alter table billing.accounts drop constraint balance_within_max');
  await database.query('alter table billing.entries drop constraint entry_within_limits');
  t.teardown(async () => {
    await database.query("update billing.accounts set max_balance = 100 where account = 'vf-max'");
    await database.query("update billing.entries set overdraft_limit = 20 where account = 'vf-od'");
    await database.query(
      'alter table billing.accounts add constraint balance_within_max check (max_balance is null or balance <= max_balance)',
    );
    await database.query(`alter table billing.entries add constraint entry_within_limits check (
      held_after >= 0 and overdraft_limit >= 0 and balance_after - held_after >= -overdraft_limit
      and (max_balance is null or balance_after <= max_balance))`);
  });
  await database.query("update billing.accounts set max_balance = 40 where account = 'vf-max'");
  await database.query("update billing.entries set overdraft_limit = 10 where account = 'vf-od'");
  const report = await verifyLedger(database.db);
  t.notOk(report.ok);
  const violations = (prefix: string) => report.checks.find((c) => c.name.startsWith(prefix))!.violations;
  t.equal(violations('within limits'), 1, 'the row above its max_balance');
  t.equal(violations('journal within limits'), 1, 'the entry below its overdraft');
  t.same([...report.checks.find((c) => c.name.startsWith('guarding constraints'))!.examples].sort(), [
    'balance_within_max',
    'entry_within_limits',
  ]);
});

t.test('a database migrated from 0023 keeps its data: every account open, no overdraft, no ceiling', async (t) => {
  const scratch = await createTestDatabase('policies_migrated');
  t.teardown(() => scratch.drop());
  const text = readFileSync(`${sqlDirectory}/0024_account_policies.sql`, 'utf8');
  const [up, down] = text.split('-- Down Migration');
  // Back to 0023 on a fresh database, a ledger written there by hand as 0023 allowed, then 0024 again.
  await scratch.query(down!);
  const { rows: columns } = await scratch.query(
    "select 1 from information_schema.columns where table_schema = 'billing' and table_name = 'accounts' and column_name = 'status'",
  );
  t.equal(columns.length, 0, 'back at 0023');
  await scratch.query(`
    insert into billing.accounts (account, currency, balance, held) values ('m-1', 'USD', 70, 20), ('m-2', 'EUR', 0, 0);
    insert into billing.operations (id, type, status, code, request, fingerprint) values ('m-op', 'credit', 'applied', 'ok', '{}', 'f');
    insert into billing.entries (operation_id, account, balance_delta, held_delta, balance_after, held_after)
      values ('m-op', 'm-1', 70, 0, 70, 0), ('m-op', 'm-1', 0, 20, 70, 20);
    insert into billing.holds (hold, account, amount, operation_id) values ('m-h', 'm-1', 20, 'm-op');`);
  await scratch.query(up!);
  const { rows } = await scratch.query(
    'select account, balance, held, overdraft_limit, max_balance, status from billing.accounts order by account',
  );
  t.same(rows, [
    { account: 'm-1', balance: 70n, held: 20n, overdraft_limit: 0n, max_balance: null, status: 'open' },
    { account: 'm-2', balance: 0n, held: 0n, overdraft_limit: 0n, max_balance: null, status: 'open' },
  ]);
  const { rows: entries } = await scratch.query<{ overdraft_limit: bigint; max_balance: bigint | null }>(
    'select overdraft_limit, max_balance from billing.entries order by id',
  );
  t.same(entries, [
    { overdraft_limit: 0n, max_balance: null },
    { overdraft_limit: 0n, max_balance: null },
  ]);
  const report = await verifyLedger(scratch.db);
  t.same(
    report.checks.filter((c) => c.severity === 'breach' && c.violations > 0).map((c) => c.name),
    [],
    'verify passes on the migrated ledger',
  );
});
