import t from 'tap';
import { createTestDatabase } from './helpers/database.ts';
import { balanceOf, drained, enqueue, resultOf, run } from './helpers/ledger.ts';
import { startTestWorker } from './helpers/worker.ts';

const database = await createTestDatabase('commands');
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

t.test('the original task: open 1 and 2, credit 777 to 1, transfer 111 from 1 to 2', async (t) => {
  const results = [
    await run(database, 'open_account', { id: 'demo-open-1', account: 'demo-1' }),
    await run(database, 'open_account', { id: 'demo-open-2', account: 'demo-2' }),
    await run(database, 'credit', { id: 'demo-credit', account: 'demo-1', amount: '777' }),
    await run(database, 'transfer', { id: 'demo-transfer', from: 'demo-1', to: 'demo-2', amount: '111' }),
  ];
  t.same(results.map((r) => [r.type, r.status, r.code]), [
    ['open_account', 'applied', 'ok'], ['open_account', 'applied', 'ok'],
    ['credit', 'applied', 'ok'], ['transfer', 'applied', 'ok'],
  ]);
  t.equal((await balanceOf(database, 'demo-1'))!.balance, 666n);
  t.equal((await balanceOf(database, 'demo-2'))!.balance, 111n);
  t.same(results[3]!.balances, [
    { account: 'demo-1', balance: '666', held: '0' },
    { account: 'demo-2', balance: '111', held: '0' },
  ]);
  const { rows } = await database.query<{ account: string; total: bigint }>(
    "select account, sum(balance_delta) as total from billing.entries where account like 'demo-%' group by 1 order by 1");
  t.same(rows.map((r) => [r.account, r.total]), [['demo-1', 666n], ['demo-2', 111n]], 'the journal sums to the balances');
});

t.test('open_account: default currency, account_exists', async (t) => {
  t.equal((await open('oa-1')).code, 'ok');
  const { rows } = await database.query<{ currency: string }>("select currency from billing.accounts where account = 'oa-1'");
  t.equal(rows[0]!.currency, 'USD');
  const again = await open('oa-1', 'EUR');
  t.equal(again.code, 'account_exists');
  t.equal(again.status, 'rejected');
});

t.test('credit: ok, account_not_found, overflow', async (t) => {
  await open('cr-1');
  t.equal((await credit('cr-1', '9223372036854775800')).code, 'ok');
  const over = await credit('cr-1', '8');
  t.equal(over.code, 'overflow');
  t.equal((await balanceOf(database, 'cr-1'))!.balance, 9223372036854775800n, 'balance unchanged and exact');
  t.equal((await credit('cr-missing', '1')).code, 'account_not_found');
  t.equal((await credit('cr-1', '7')).code, 'ok', 'up to the bigint limit exactly');
  t.equal((await balanceOf(database, 'cr-1'))!.balance, 9223372036854775807n);
});

t.test('debit: ok, insufficient_funds, account_not_found', async (t) => {
  await open('db-1');
  await credit('db-1', '100');
  t.equal((await run(database, 'debit', { id: nextId('debit'), account: 'db-1', amount: '101' })).code, 'insufficient_funds');
  t.equal((await run(database, 'debit', { id: nextId('debit'), account: 'db-1', amount: 100 })).code, 'ok', 'a JSON integer amount');
  t.equal((await balanceOf(database, 'db-1'))!.balance, 0n);
  t.equal((await run(database, 'debit', { id: nextId('debit'), account: 'db-missing', amount: '1' })).code, 'account_not_found');
});

t.test('transfer: every rejection', async (t) => {
  await open('tr-a');
  await open('tr-b');
  await open('tr-eur', 'EUR');
  await credit('tr-a', '50');
  const transfer = (from: string, to: string, amount: string) => run(database, 'transfer', { id: nextId('tr'), from, to, amount });
  t.equal((await transfer('tr-a', 'tr-a', '1')).code, 'same_account');
  t.equal((await transfer('tr-a', 'tr-missing', '1')).code, 'account_not_found');
  t.equal((await transfer('tr-missing', 'tr-a', '1')).code, 'account_not_found');
  t.equal((await transfer('tr-a', 'tr-eur', '1')).code, 'currency_mismatch');
  t.equal((await transfer('tr-a', 'tr-b', '51')).code, 'insufficient_funds');
  await open('tr-full');
  await credit('tr-full', '9223372036854775807');
  t.equal((await transfer('tr-a', 'tr-full', '1')).code, 'overflow');
  t.equal((await transfer('tr-a', 'tr-b', '50')).code, 'ok');
  t.equal((await balanceOf(database, 'tr-a'))!.balance, 0n);
  t.equal((await balanceOf(database, 'tr-b'))!.balance, 50n);
});

t.test('hold, capture (partial, to another account), release', async (t) => {
  await open('h-1');
  await open('h-2');
  await open('h-eur', 'EUR');
  await credit('h-1', '100');
  const hold = await run(database, 'hold', { id: 'hold-a', account: 'h-1', amount: '60' });
  t.equal(hold.code, 'ok');
  t.same(await balanceOf(database, 'h-1'), { balance: 100n, held: 60n, available: 40n });
  t.equal((await run(database, 'debit', { id: nextId('d'), account: 'h-1', amount: '41' })).code, 'insufficient_funds', 'held money is not available');
  t.equal((await run(database, 'hold', { id: nextId('h'), hold: 'hold-a', account: 'h-1', amount: '1' })).code, 'hold_exists');
  t.equal((await run(database, 'hold', { id: nextId('h'), account: 'h-1', amount: '41' })).code, 'insufficient_funds');
  t.equal((await run(database, 'hold', { id: nextId('h'), account: 'h-missing', amount: '1' })).code, 'account_not_found');

  t.equal((await run(database, 'capture', { id: nextId('c'), hold: 'hold-a', amount: '61' })).code, 'amount_exceeds_hold');
  t.equal((await run(database, 'capture', { id: nextId('c'), hold: 'hold-missing' })).code, 'hold_not_found');
  t.equal((await run(database, 'capture', { id: nextId('c'), hold: 'hold-a', to: 'h-missing' })).code, 'account_not_found');
  t.equal((await run(database, 'capture', { id: nextId('c'), hold: 'hold-a', to: 'h-eur' })).code, 'currency_mismatch');
  const partial = await run(database, 'capture', { id: nextId('c'), hold: 'hold-a', amount: '25', to: 'h-2' });
  t.equal(partial.code, 'ok');
  t.same(await balanceOf(database, 'h-1'), { balance: 75n, held: 0n, available: 75n }, '25 captured, 35 released');
  t.same(await balanceOf(database, 'h-2'), { balance: 25n, held: 0n, available: 25n });
  t.equal((await run(database, 'capture', { id: nextId('c'), hold: 'hold-a' })).code, 'hold_closed', 'double capture');
  t.equal((await run(database, 'release', { id: nextId('r'), hold: 'hold-a' })).code, 'hold_closed');

  await run(database, 'hold', { id: nextId('h'), hold: 'hold-b', account: 'h-1', amount: '70' });
  t.equal((await run(database, 'release', { id: nextId('r'), hold: 'hold-b' })).code, 'ok');
  t.equal((await run(database, 'release', { id: nextId('r'), hold: 'hold-missing' })).code, 'hold_not_found');
  t.equal((await run(database, 'capture', { id: nextId('c'), hold: 'hold-b' })).code, 'hold_closed', 'capture after release');

  await run(database, 'hold', { id: nextId('h'), hold: 'hold-c', account: 'h-1', amount: '75' });
  t.equal((await run(database, 'capture', { id: nextId('c'), hold: 'hold-c' })).code, 'ok', 'capture of the whole hold off the balance');
  t.same(await balanceOf(database, 'h-1'), { balance: 0n, held: 0n, available: 0n });
  const { rows } = await database.query<{ hold: string; status: string; captured: bigint }>(
    "select hold, status, captured from billing.holds where hold in ('hold-a', 'hold-b', 'hold-c') order by hold");
  t.same(rows, [
    { hold: 'hold-a', status: 'captured', captured: 25n },
    { hold: 'hold-b', status: 'released', captured: 0n },
    { hold: 'hold-c', status: 'captured', captured: 75n },
  ]);
});

t.test('capture over the full overflow limit of the receiver', async (t) => {
  await open('ov-src');
  await open('ov-dst');
  await credit('ov-src', '10');
  await credit('ov-dst', '9223372036854775800');
  await run(database, 'hold', { id: 'ov-hold', account: 'ov-src', amount: '10' });
  t.equal((await run(database, 'capture', { id: nextId('c'), hold: 'ov-hold', to: 'ov-dst' })).code, 'overflow');
  t.same(await balanceOf(database, 'ov-src'), { balance: 10n, held: 10n, available: 0n }, 'the hold stays active');
});

t.test('hold expiry: released by the service within 5 seconds, with a result of its own', async (t) => {
  await open('ex-1');
  await credit('ex-1', '10');
  const hold = await run(database, 'hold', { id: 'ex-hold', account: 'ex-1', amount: '10', ttl_seconds: 1 });
  t.equal(hold.code, 'ok');
  t.equal((await balanceOf(database, 'ex-1'))!.available, 0n);
  const started = Date.now();
  const expired = await resultOf(database, 'expire:ex-hold', 8000);
  const waited = Date.now() - started;
  t.ok(waited < 6000, `expired ${waited} ms after the request (ttl 1 s)`);
  t.equal(expired.type, 'expire');
  t.equal(expired.code, 'ok');
  t.same(await balanceOf(database, 'ex-1'), { balance: 10n, held: 0n, available: 10n });
  const { rows } = await database.query<{ status: string }>("select status from billing.holds where hold = 'ex-hold'");
  t.equal(rows[0]!.status, 'expired');
  t.equal((await run(database, 'capture', { id: nextId('c'), hold: 'ex-hold' })).code, 'hold_closed');

  const past = await run(database, 'hold', { id: nextId('h'), account: 'ex-1', amount: '1', expires_at: '2020-01-01T00:00:00Z' });
  t.equal(past.code, 'invalid_command');
  t.match(past.message, /expires_at/);
});

t.test('a captured hold is not expired later', async (t) => {
  await open('ex-2');
  await credit('ex-2', '10');
  await run(database, 'hold', { id: 'ex-hold-2', account: 'ex-2', amount: '10', ttl_seconds: 1 });
  await run(database, 'capture', { id: nextId('c'), hold: 'ex-hold-2', amount: '4' });
  await new Promise((resolve) => setTimeout(resolve, 2500));
  await drained(database);
  const { rows } = await database.query("select 1 from billing.operations where id = 'expire:ex-hold-2'");
  t.equal(rows.length, 0, 'no expire result');
  t.same(await balanceOf(database, 'ex-2'), { balance: 6n, held: 0n, available: 6n });
});

t.test('idempotency: a repeated command changes nothing; another payload under the same id is id_conflict', async (t) => {
  await open('id-1');
  const first = await credit('id-1', '5');
  const jobs = await Promise.all([1, 2, 3].map(() => enqueue(database, 'credit', { id: first.id, account: 'id-1', amount: '5' })));
  t.equal(jobs.length, 3);
  await drained(database);
  t.equal((await balanceOf(database, 'id-1'))!.balance, 5n, 'three replays, one effect');
  const { rows: ops } = await database.query('select 1 from billing.operations where id = $1', [first.id]);
  t.equal(ops.length, 1);

  await enqueue(database, 'credit', { id: first.id, account: 'id-1', amount: '6' });
  await drained(database);
  t.equal((await balanceOf(database, 'id-1'))!.balance, 5n, 'the conflicting command had no effect');
  const stored = await resultOf(database, first.id);
  t.same(stored.request, { id: first.id, account: 'id-1', amount: '5' }, 'the first result row stays as it was');
  const { rows: conflicts } = await database.query<{ request: unknown }>('select request from billing.id_conflicts where id = $1', [first.id]);
  t.same(conflicts.map((c) => c.request), [{ id: first.id, account: 'id-1', amount: '6' }], 'the conflict is recorded');
});

t.test('a command without an id takes job:<job id>', async (t) => {
  await open('noid-1');
  const jobId = await enqueue(database, 'credit', { account: 'noid-1', amount: '3' });
  const result = await resultOf(database, `job:${jobId}`);
  t.equal(result.code, 'ok');
  t.equal(result.job_id, jobId);
});

t.test('invalid commands are answered, not retried', async (t) => {
  const bad = await run(database, 'credit', { id: nextId('bad'), account: 'x', amount: '1.5' });
  t.equal(bad.code, 'invalid_command');
  t.match(bad.message, /^amount:/);
  const missing = await run(database, 'transfer', { id: nextId('bad'), from: 'a', amount: '1' });
  t.match(missing.message, /^to: is required/);
  await drained(database);
});

t.test('every result row carries the job id and the request, and seqs increase', async (t) => {
  const { rows } = await database.query<{ seq: bigint; job_id: bigint | null }>('select seq, job_id from billing.operations order by seq');
  t.ok(rows.length > 20);
  t.ok(rows.every((r) => r.job_id !== null));
  t.ok(rows.every((r, i) => i === 0 || r.seq > rows[i - 1]!.seq));
});

t.test('verify: the ledger is clean, and a tampered journal is caught', async (t) => {
  const { verifyLedger } = await import('../src/ledger/verify.ts');
  await drained(database);
  const clean = await verifyLedger(database.db);
  t.ok(clean.ok, JSON.stringify(clean.checks.filter((c) => c.violations)));
  // A DBA "fixes" a balance by hand, without a journal entry: verify must say so.
  await database.query("update billing.accounts set balance = balance + 1 where account = 'demo-2'");
  const tampered = await verifyLedger(database.db);
  t.notOk(tampered.ok);
  t.equal(tampered.checks.find((c) => c.name === 'journal ends at the account row')!.violations, 1);
  await database.query("update billing.accounts set balance = balance - 1 where account = 'demo-2'");
});
