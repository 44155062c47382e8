import t from 'tap';
import { createTestDatabase } from './helpers/database.ts';
import { balanceOf, enqueue, jobsDone as jobsDoneIn, resultOf, run } from './helpers/ledger.ts';
import { startTestWorker } from './helpers/worker.ts';

// Each test makes its own accounts, holds and ids and looks only at those, so that any one of
// them can run alone (`--grep`) or in another order, and waits on rows and jobs, never on time.

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
const jobsDone = (jobIds: bigint[]) => jobsDoneIn(database, jobIds);

t.test('the original task: open 1 and 2, credit 777 to 1, transfer 111 from 1 to 2', async (t) => {
  const results = [
    await run(database, 'open_account', { id: 'demo-open-1', account: 'demo-1' }),
    await run(database, 'open_account', { id: 'demo-open-2', account: 'demo-2' }),
    await run(database, 'credit', { id: 'demo-credit', account: 'demo-1', amount: '777' }),
    await run(database, 'transfer', { id: 'demo-transfer', from: 'demo-1', to: 'demo-2', amount: '111' }),
  ];
  t.same(
    results.map((r) => [r.type, r.status, r.code]),
    [
      ['open_account', 'applied', 'ok'],
      ['open_account', 'applied', 'ok'],
      ['credit', 'applied', 'ok'],
      ['transfer', 'applied', 'ok'],
    ],
  );
  t.equal((await balanceOf(database, 'demo-1'))!.balance, 666n);
  t.equal((await balanceOf(database, 'demo-2'))!.balance, 111n);
  t.same(results[3]!.balances, [
    { account: 'demo-1', balance: '666', held: '0' },
    { account: 'demo-2', balance: '111', held: '0' },
  ]);
  const { rows } = await database.query<{ account: string; total: bigint }>(
    "select account, sum(balance_delta) as total from billing.entries where account like 'demo-%' group by 1 order by 1",
  );
  t.same(
    rows.map((r) => [r.account, r.total]),
    [
      ['demo-1', 666n],
      ['demo-2', 111n],
    ],
    'the journal sums to the balances',
  );
});

t.test('open_account: default currency, account_exists', async (t) => {
  t.equal((await open('oa-1')).code, 'ok');
  const { rows } = await database.query<{ currency: string }>(
    "select currency from billing.accounts where account = 'oa-1'",
  );
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
  t.equal(
    (await run(database, 'debit', { id: nextId('debit'), account: 'db-1', amount: '101' })).code,
    'insufficient_funds',
  );
  t.equal(
    (await run(database, 'debit', { id: nextId('debit'), account: 'db-1', amount: 100 })).code,
    'ok',
    'a JSON integer amount',
  );
  t.equal((await balanceOf(database, 'db-1'))!.balance, 0n);
  t.equal(
    (await run(database, 'debit', { id: nextId('debit'), account: 'db-missing', amount: '1' })).code,
    'account_not_found',
  );
});

t.test('transfer: every rejection', async (t) => {
  await open('tr-a');
  await open('tr-b');
  await open('tr-eur', 'EUR');
  await credit('tr-a', '50');
  const transfer = (from: string, to: string, amount: string) =>
    run(database, 'transfer', { id: nextId('tr'), from, to, amount });
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
  t.equal(
    (await run(database, 'debit', { id: nextId('d'), account: 'h-1', amount: '41' })).code,
    'insufficient_funds',
    'held money is not available',
  );
  t.equal(
    (await run(database, 'hold', { id: nextId('h'), hold: 'hold-a', account: 'h-1', amount: '1' })).code,
    'hold_exists',
  );
  t.equal((await run(database, 'hold', { id: nextId('h'), account: 'h-1', amount: '41' })).code, 'insufficient_funds');
  t.equal(
    (await run(database, 'hold', { id: nextId('h'), account: 'h-missing', amount: '1' })).code,
    'account_not_found',
  );

  t.equal(
    (await run(database, 'capture', { id: nextId('c'), hold: 'hold-a', amount: '61' })).code,
    'amount_exceeds_hold',
  );
  t.equal((await run(database, 'capture', { id: nextId('c'), hold: 'hold-missing' })).code, 'hold_not_found');
  t.equal(
    (await run(database, 'capture', { id: nextId('c'), hold: 'hold-a', to: 'h-missing' })).code,
    'account_not_found',
  );
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
  t.equal(
    (await run(database, 'capture', { id: nextId('c'), hold: 'hold-b' })).code,
    'hold_closed',
    'capture after release',
  );

  await run(database, 'hold', { id: nextId('h'), hold: 'hold-c', account: 'h-1', amount: '75' });
  t.equal(
    (await run(database, 'capture', { id: nextId('c'), hold: 'hold-c' })).code,
    'ok',
    'capture of the whole hold off the balance',
  );
  t.same(await balanceOf(database, 'h-1'), { balance: 0n, held: 0n, available: 0n });
  const { rows } = await database.query<{ hold: string; status: string; captured: bigint }>(
    "select hold, status, captured from billing.holds where hold in ('hold-a', 'hold-b', 'hold-c') order by hold",
  );
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
  // From the hold's own result: the account row may already show the expiry on a slow machine.
  t.same(hold.balances, [{ account: 'ex-1', balance: '10', held: '10' }], 'all 10 held');
  const expired = await resultOf(database, 'expire:ex-hold');
  // Both instants by the database's clock: how late the service was, not how fast this test polls.
  const {
    rows: [late],
  } = await database.query<{ ms: number }>(
    "select (extract(epoch from o.created_at - h.expires_at) * 1000)::float8 as ms from billing.operations o, billing.holds h where o.id = 'expire:ex-hold' and h.hold = 'ex-hold'",
  );
  t.ok(late!.ms >= 0 && late!.ms < 5000, `released ${Math.round(late!.ms)} ms after its expiry (the spec allows 5 s)`);
  t.equal(expired.type, 'expire');
  t.equal(expired.code, 'ok');
  t.same(await balanceOf(database, 'ex-1'), { balance: 10n, held: 0n, available: 10n });
  const { rows } = await database.query<{ status: string }>("select status from billing.holds where hold = 'ex-hold'");
  t.equal(rows[0]!.status, 'expired');
  t.equal((await run(database, 'capture', { id: nextId('c'), hold: 'ex-hold' })).code, 'hold_closed');

  const past = await run(database, 'hold', {
    id: nextId('h'),
    account: 'ex-1',
    amount: '1',
    expires_at: '2020-01-01T00:00:00Z',
  });
  t.equal(past.code, 'invalid_command');
  t.match(past.message, /expires_at/);
});

t.test('a captured hold is not expired later', async (t) => {
  await open('ex-2');
  await credit('ex-2', '10');
  // An hour, so that the capture is in time however slow the machine; the expiry job is then
  // brought forward, rather than waited for.
  await run(database, 'hold', { id: 'ex-hold-2', account: 'ex-2', amount: '10', ttl_seconds: 3600 });
  t.equal((await run(database, 'capture', { id: nextId('c'), hold: 'ex-hold-2', amount: '4' })).code, 'ok');
  const { rows: jobs } = await database.query<{ id: bigint }>(
    "select id from graphile_worker.reschedule_jobs(array(select id from graphile_worker.jobs where key = 'expire:ex-hold-2'), run_at => now())",
  );
  t.equal(jobs.length, 1, 'the capture left the expiry job queued; it is due now');
  await jobsDone(jobs.map((j) => j.id));
  const { rows } = await database.query("select 1 from billing.operations where id = 'expire:ex-hold-2'");
  t.equal(rows.length, 0, 'the expiry ran and left no result');
  t.same(await balanceOf(database, 'ex-2'), { balance: 6n, held: 0n, available: 6n });
});

t.test(
  'idempotency: a repeated command changes nothing; another payload under the same id is id_conflict',
  async (t) => {
    await open('id-1');
    const first = await credit('id-1', '5');
    const jobs = await Promise.all(
      [1, 2, 3].map(() => enqueue(database, 'credit', { id: first.id, account: 'id-1', amount: '5' })),
    );
    await jobsDone(jobs);
    t.equal((await balanceOf(database, 'id-1'))!.balance, 5n, 'three replays, one effect');
    const { rows: ops } = await database.query<{ job_id: bigint }>(
      'select job_id from billing.operations where id = $1',
      [first.id],
    );
    t.same(ops, [{ job_id: first.job_id }], "one result row, the first job's");
    const { rows: noted } = await database.query('select 1 from billing.id_conflicts where id = $1', [first.id]);
    t.equal(noted.length, 0, 'a replay is not a conflict');

    await jobsDone([await enqueue(database, 'credit', { id: first.id, account: 'id-1', amount: '6' })]);
    t.equal((await balanceOf(database, 'id-1'))!.balance, 5n, 'the conflicting command had no effect');
    const stored = await resultOf(database, first.id);
    t.same(stored.request, { id: first.id, account: 'id-1', amount: '5' }, 'the first result row stays as it was');
    const { rows: conflicts } = await database.query<{ request: unknown }>(
      'select request from billing.id_conflicts where id = $1',
      [first.id],
    );
    t.same(
      conflicts.map((c) => c.request),
      [{ id: first.id, account: 'id-1', amount: '6' }],
      'the conflict is recorded',
    );
  },
);

t.test('a command without an id takes job:<job id>', async (t) => {
  await open('noid-1');
  const jobId = await enqueue(database, 'credit', { account: 'noid-1', amount: '3' });
  const result = await resultOf(database, `job:${jobId}`);
  t.equal(result.code, 'ok');
  t.equal(result.job_id, jobId);
});

t.test('invalid commands are answered, not retried', async (t) => {
  const badId = nextId('bad');
  const badJob = await enqueue(database, 'credit', { id: badId, account: 'x', amount: '1.5' });
  const bad = await resultOf(database, badId);
  t.equal(bad.code, 'invalid_command');
  t.match(bad.message, /^amount:/);
  const missingId = nextId('bad');
  const missingJob = await enqueue(database, 'transfer', { id: missingId, from: 'a', amount: '1' });
  const missing = await resultOf(database, missingId);
  t.equal(missing.code, 'invalid_command');
  t.match(missing.message, /^to: is required/);
  await jobsDone([badJob, missingJob]);
  t.same([bad.job_id, missing.job_id], [badJob, missingJob], 'each answered by its first attempt');
});

t.test('every result row carries its job id and request, and seqs follow the order of the commands', async (t) => {
  const sent: { id: string; type: string; payload: Record<string, unknown>; jobId: bigint }[] = [];
  const send = async (type: string, payload: { id: string } & Record<string, unknown>) => {
    const jobId = await enqueue(database, type, payload);
    await resultOf(database, payload.id);
    sent.push({ id: payload.id, type, payload, jobId });
  };
  await send('open_account', { id: nextId('rr'), account: 'rr-1' });
  await send('open_account', { id: nextId('rr'), account: 'rr-2', currency: 'USD' });
  await send('credit', { id: nextId('rr'), account: 'rr-1', amount: '50', metadata: { order: 42 } });
  await send('transfer', { id: nextId('rr'), from: 'rr-1', to: 'rr-2', amount: 20 });
  await send('debit', { id: nextId('rr'), account: 'rr-2', amount: '999' });
  await send('hold', { id: nextId('rr'), account: 'rr-1', amount: '5', hold: 'rr-hold' });
  await send('release', { id: nextId('rr'), hold: 'rr-hold' });
  const { rows } = await database.query<{ id: string; seq: bigint; job_id: bigint | null; request: unknown }>(
    'select id, seq, job_id, request from billing.operations where id = any($1) order by seq',
    [sent.map((s) => s.id)],
  );
  t.same(
    rows.map((r) => r.id),
    sent.map((s) => s.id),
    'one row each, in seq order as they were run',
  );
  t.same(
    rows.map((r) => r.job_id),
    sent.map((s) => s.jobId),
    'each row names its job',
  );
  t.same(
    rows.map((r) => r.request),
    sent.map((s) => s.payload),
    'each row keeps the request as sent',
  );
});

t.test('verify: the ledger is clean, and a tampered journal is caught', async (t) => {
  const { verifyLedger } = await import('../src/ledger/verify.ts');
  await open('vf-1');
  await open('vf-2');
  await credit('vf-1', '30');
  await run(database, 'transfer', { id: nextId('vf'), from: 'vf-1', to: 'vf-2', amount: '12' });
  const clean = await verifyLedger(database.db);
  t.ok(clean.ok, JSON.stringify(clean.checks.filter((c) => c.violations)));
  // A DBA "fixes" a balance by hand, without a journal entry: verify must say so.
  await database.query("update billing.accounts set balance = balance + 1 where account = 'vf-2'");
  const tampered = await verifyLedger(database.db);
  t.notOk(tampered.ok);
  t.equal(tampered.checks.find((c) => c.name === 'journal ends at the account row')!.violations, 1);
  await database.query("update billing.accounts set balance = balance - 1 where account = 'vf-2'");
  t.ok((await verifyLedger(database.db)).ok, 'clean again once the balance is put back');
});
