import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { maxPayloadBytes } from '../src/commands/parse.ts';
import { createTestDatabase } from './helpers/database.ts';
import { drained, run, type ResultRow } from './helpers/ledger.ts';
import { startTestWorker } from './helpers/worker.ts';

// Every bad input goes through a real worker, enqueued from SQL as an application would, and must
// end with exactly one result, the job completed (not retrying) and the ledger untouched.
const database = await createTestDatabase('bad_input');
const worker = await startTestWorker(database);
t.teardown(async () => {
  await worker.stop();
  await database.drop();
});

for (const [type, payload] of [
  ['open_account', { id: 'setup-open-a', account: 'acc-a' }],
  ['open_account', { id: 'setup-open-b', account: 'acc-b' }],
  ['credit', { id: 'setup-credit-a', account: 'acc-a', amount: '1000' }],
  ['hold', { id: 'setup-hold-active', account: 'acc-a', amount: '50' }],
  ['hold', { id: 'setup-hold-released', account: 'acc-a', amount: '10' }],
  ['release', { id: 'setup-release', hold: 'setup-hold-released' }],
  ['hold', { id: 'setup-hold-captured', account: 'acc-a', amount: '10' }],
  ['capture', { id: 'setup-capture', hold: 'setup-hold-captured' }],
] as const) {
  const result = await run(database, type, payload);
  if (result.code !== 'ok') throw new Error(`setup ${payload.id}: ${result.code} ${result.message}`);
}

interface Case {
  name: string;
  task: string;
  /** The job payload as JSON text, exactly as it goes to graphile_worker.add_job(..., $2::json). */
  json: string;
  /** The field the message starts with; absent for business rejections. */
  field?: string;
  code?: string;
}

let counter = 0;
const id = () => `bad-${++counter}`;
const object = (name: string, task: string, payload: Record<string, unknown>, field: string): Case => ({
  name,
  task,
  json: JSON.stringify({ id: id(), ...payload }),
  field,
});
const credit = (name: string, payload: Record<string, unknown>, field: string) =>
  object(name, 'credit', { account: 'acc-a', amount: '5', ...payload }, field);
const business = (name: string, task: string, payload: Record<string, unknown>, code: string): Case => ({
  name,
  task,
  json: JSON.stringify({ id: id(), ...payload }),
  code,
});
const deep = (depth: number) => `${'{"d":'.repeat(depth)}1${'}'.repeat(depth)}`;

const cases: Case[] = [
  credit('missing account', { account: undefined }, 'account'),
  credit('missing amount', { amount: undefined }, 'amount'),
  credit('empty account', { account: '' }, 'account'),
  credit('empty amount', { amount: '' }, 'amount'),
  { name: 'empty id', task: 'credit', json: '{"id":"","account":"acc-a","amount":"5"}', field: 'id' },
  { name: 'empty object', task: 'debit', json: '{}', field: 'account' },
  credit('account is a number', { account: 5 }, 'account'),
  credit('amount is a boolean', { amount: true }, 'amount'),
  credit('amount is null', { amount: null }, 'amount'),
  credit('amount is an object', { amount: { value: 5 } }, 'amount'),
  credit('negative amount string', { amount: '-5' }, 'amount'),
  credit('negative amount number', { amount: -5 }, 'amount'),
  credit('zero amount string', { amount: '0' }, 'amount'),
  credit('zero amount number', { amount: 0 }, 'amount'),
  credit('fractional amount string', { amount: '1.5' }, 'amount'),
  credit('fractional amount number', { amount: 1.5 }, 'amount'),
  credit('exponent string', { amount: '1e3' }, 'amount'),
  credit('hexadecimal string', { amount: '0x10' }, 'amount'),
  credit('padded with a space', { amount: ' 5' }, 'amount'),
  credit('padded with a zero', { amount: '05' }, 'amount'),
  credit('signed +', { amount: '+5' }, 'amount'),
  credit('signed -', { amount: '-5' }, 'amount'),
  credit('over 2^63-1 as a string', { amount: '9223372036854775808' }, 'amount'),
  {
    name: 'over 2^53-1 as a JSON number',
    task: 'credit',
    json: `{"id":"${id()}","account":"acc-a","amount":9007199254740993}`,
    field: 'amount',
  },
  {
    name: 'over 2^63-1 as a JSON number',
    task: 'credit',
    json: `{"id":"${id()}","account":"acc-a","amount":99999999999999999999999}`,
    field: 'amount',
  },
  {
    name: 'a JSON number beyond a double',
    task: 'credit',
    json: `{"id":"${id()}","account":"acc-a","amount":1e400}`,
    field: 'amount',
  },
  // Numbers are judged by their JSON text, never by the double they parse to (issue 9).
  ...['0.99999999999999999', '1.9999999999999999', '1e3', '1E2', '1.0', '-0', '10e-1'].map((text): Case => ({
    name: `amount ${text} as a JSON number`,
    task: 'credit',
    json: `{"id":"${id()}","account":"acc-a","amount":${text}}`,
    field: 'amount',
  })),
  ...['1.0', '6e1', '"60"', 'true', '1.5'].map((text): Case => ({
    name: `ttl_seconds ${text}`,
    task: 'hold',
    json: `{"id":"${id()}","account":"acc-a","amount":"5","ttl_seconds":${text}}`,
    field: 'ttl_seconds',
  })),
  // Ids the service derives.
  { name: 'a job: id', task: 'credit', json: '{"id":"job:1","account":"acc-a","amount":"5"}', field: 'id' },
  {
    name: 'an expire: id',
    task: 'release',
    json: '{"id":"expire:setup-hold-active","hold":"setup-hold-active"}',
    field: 'id',
  },
  {
    name: 'an expire: hold id',
    task: 'hold',
    json: `{"id":"${id()}","account":"acc-a","amount":"5","hold":"expire:x"}`,
    field: 'hold',
  },
  // Wrong types.
  {
    name: 'account is an array',
    task: 'credit',
    json: `{"id":"${id()}","account":["x"],"amount":"5"}`,
    field: 'account',
  },
  { name: 'id is null', task: 'credit', json: '{"id":null,"account":"acc-a","amount":"5"}', field: 'id' },
  {
    name: 'expires_at is a number',
    task: 'hold',
    json: `{"id":"${id()}","account":"acc-a","amount":"5","expires_at":1893456000}`,
    field: 'expires_at',
  },
  { name: 'hold is a number', task: 'release', json: `{"id":"${id()}","hold":5}`, field: 'hold' },
  {
    name: 'nested 40 deep at the top',
    task: 'credit',
    json: `{"id":"${id()}","account":"acc-a","amount":"5","x":${'['.repeat(40)}${']'.repeat(40)}}`,
    field: 'x',
  },
  credit('account too long', { account: 'a'.repeat(65) }, 'account'),
  credit('control character in account', { account: 'acc-a\n' }, 'account'),
  credit('SQL in account', { account: "acc-a'; update billing.accounts set balance = 0; --" }, 'account'),
  object('SQL in to', 'transfer', { from: 'acc-a', to: "acc-b' or '1'='1", amount: '5' }, 'to'),
  credit('unknown field', { amout: '5' }, 'amout'),
  object('unknown field on release', 'release', { hold: 'setup-hold-active', amount: '5' }, 'amount'),
  credit('metadata over 4 KiB', { metadata: { note: 'x'.repeat(4100) } }, 'metadata'),
  credit('metadata nested 9 deep', { metadata: JSON.parse(deep(9)) }, 'metadata'),
  {
    name: 'metadata nested 5,000 deep',
    task: 'credit',
    json: `{"id":"${id()}","account":"acc-a","amount":"5","metadata":${deep(5000)}}`,
    field: 'metadata',
  },
  credit('metadata is a string', { metadata: 'note' }, 'metadata'),
  // json keeps \u0000 and lone surrogates, jsonb refuses them: the worker must answer, not retry.
  {
    name: '\\u0000 in account',
    task: 'credit',
    json: `{"id":"${id()}","account":"a\\u0000","amount":"5"}`,
    field: 'account',
  },
  {
    name: 'lone surrogate in account',
    task: 'credit',
    json: `{"id":"${id()}","account":"a\\ud800","amount":"5"}`,
    field: 'account',
  },
  {
    name: 'lone surrogate in a key',
    task: 'credit',
    json: `{"id":"${id()}","account":"acc-a","amount":"5","k\\udc00":1}`,
    field: 'k\uFFFD',
  },
  {
    name: '\\u0000 in a key',
    task: 'credit',
    json: `{"id":"${id()}","acc\\u0000ount":"acc-a","amount":"5"}`,
    field: 'acc\uFFFDount',
  },
  { name: '\\u0000 in the id', task: 'credit', json: '{"id":"x\\u0000","account":"acc-a","amount":"5"}', field: 'id' },
  { name: 'payload is a string', task: 'credit', json: '"credit acc-a 5"', field: 'payload' },
  { name: 'payload is a number', task: 'credit', json: '5', field: 'payload' },
  { name: 'payload is null', task: 'credit', json: 'null', field: 'payload' },
  credit('oversized payload', { pad: 'x'.repeat(maxPayloadBytes) }, 'payload'),
  object('bad currency', 'open_account', { account: 'acc-c', currency: 'usd' }, 'currency'),
  object('ttl_seconds zero', 'hold', { account: 'acc-a', amount: '5', ttl_seconds: 0 }, 'ttl_seconds'),
  object(
    'expires_at in the past',
    'hold',
    { account: 'acc-a', amount: '5', expires_at: '2020-01-01T00:00:00Z' },
    'expires_at',
  ),
  business('self-transfer', 'transfer', { from: 'acc-a', to: 'acc-a', amount: '5' }, 'same_account'),
  business('capture after release', 'capture', { hold: 'setup-hold-released' }, 'hold_closed'),
  business('double capture', 'capture', { hold: 'setup-hold-captured' }, 'hold_closed'),
  business('release after capture', 'release', { hold: 'setup-hold-captured' }, 'hold_closed'),
  business('capture over the hold', 'capture', { hold: 'setup-hold-active', amount: '51' }, 'amount_exceeds_hold'),
  business('debit over the available balance', 'debit', { account: 'acc-a', amount: '951' }, 'insufficient_funds'),
  business('credit to an unknown account', 'credit', { account: 'acc-missing', amount: '5' }, 'account_not_found'),
];

async function ledgerState(): Promise<unknown> {
  const accounts = await database.query('select account, balance, held from billing.accounts order by account');
  const holds = await database.query('select hold, status, captured from billing.holds order by hold');
  const entries = await database.query('select count(*) as n, max(id) as last from billing.entries');
  return { accounts: accounts.rows, holds: holds.rows, entries: entries.rows };
}

async function enqueueJson(task: string, json: string): Promise<bigint> {
  const { rows } = await database.query<{ id: bigint }>('select (graphile_worker.add_job($1, $2::json)).id', [
    `billing/${task}`,
    json,
  ]);
  return rows[0]!.id;
}

/** Waits until the job is gone from the queue (completed) and returns the results it wrote. */
async function settle(jobId: bigint, expectedResults: number): Promise<{ results: ResultRow[]; job: unknown }> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const { rows: results } = await database.query<ResultRow>(
      'select * from billing.operations where job_id = $1 order by seq',
      [jobId],
    );
    const { rows: jobs } = await database.query<{ attempts: number; last_error: string | null }>(
      'select attempts, last_error from graphile_worker.jobs where id = $1',
      [jobId],
    );
    if (results.length >= expectedResults && jobs.length === 0) return { results, job: undefined };
    if (jobs[0]?.last_error || Date.now() > deadline) return { results, job: jobs[0] ?? null };
    await sleep(20);
  }
}

t.test('every bad input: one result naming the field, the job completed, the ledger untouched', async (t) => {
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const before = await ledgerState();
      const jobId = await enqueueJson(c.task, c.json);
      const { results, job } = await settle(jobId, 1);
      t.equal(job, undefined, 'the job completed, it is not waiting for a retry');
      t.equal(results.length, 1, 'exactly one result');
      const result = results[0]!;
      t.equal(result.status, 'rejected');
      t.equal(result.code, c.code ?? 'invalid_command', result.message ?? '');
      if (c.field !== undefined)
        t.ok(result.message?.startsWith(`${c.field}: `), `message names ${c.field}: ${result.message?.slice(0, 120)}`);
      t.same(await ledgerState(), before, 'balances, holds and the journal unchanged');
    });
  }
});

t.test('SQL exactly as an application writes it: \\u0000 in a json literal', async (t) => {
  const before = await ledgerState();
  const { rows } = await database.query<{ id: bigint }>(
    `select (graphile_worker.add_job('billing/credit', '{"account":"a\\u0000"}'::json)).id`,
  );
  const jobId = rows[0]!.id;
  const { results, job } = await settle(jobId, 1);
  t.equal(job, undefined, 'completed');
  t.same(
    results.map((r) => [r.id, r.code]),
    [[`job:${jobId}`, 'invalid_command']],
  );
  t.match(results[0]!.message, /^account: /);
  t.same(await ledgerState(), before);
});

t.test('an array payload is a batch job: each element gets its own result', async (t) => {
  const before = await ledgerState();
  const elements = [
    { id: 'batch-1', account: 'acc-a', amount: '1.5' },
    { id: 'batch-2', account: 'acc-a', amount: '-1' },
    { id: 'batch-3', account: 'acc-missing', amount: '1' },
    { account: 'acc-a', amount: '1' },
    { id: 'batch-5', account: 'acc-a', amount: '5', extra: true },
    { account: 'acc-a', amount: '2' },
  ];
  const jobId = await enqueueJson('credit', JSON.stringify(elements));
  const { results, job } = await settle(jobId, elements.length);
  t.equal(job, undefined, 'completed');
  const byId = new Map(results.map((r) => [r.id, r]));
  t.equal(results.length, elements.length, 'one result per element');
  t.match(byId.get('batch-1')?.message, /^amount: /);
  t.match(byId.get('batch-2')?.message, /^amount: /);
  t.equal(byId.get('batch-3')?.code, 'account_not_found');
  t.match(
    byId.get(`job:${jobId}:3:unidentified`)?.message,
    /^id: is required/,
    'an element without an id is refused by design',
  );
  t.match(byId.get(`job:${jobId}:5:unidentified`)?.message, /^id: is required/, 'each one with a result of its own');
  t.match(byId.get('batch-5')?.message, /^extra: unknown field/);
  t.ok(results.every((r) => r.status === 'rejected'));
  t.same(await ledgerState(), before);
});

t.test('a refused command sent again is a replay: still one result, nothing changes', async (t) => {
  const payload = JSON.stringify({ id: 'again-1', account: 'acc-a', amount: '0x10' });
  const first = await enqueueJson('credit', payload);
  await settle(first, 1);
  const before = await ledgerState();
  const second = await enqueueJson('credit', payload);
  const { job } = await settle(second, 0);
  t.equal(job, undefined, 'the repeat completed too');
  const { rows } = await database.query<{ id: string; job_id: bigint }>(
    "select id, job_id from billing.operations where id = 'again-1'",
  );
  t.same(rows, [{ id: 'again-1', job_id: first }], 'the first result stands');
  t.same(await ledgerState(), before);
});

t.test('no bad input left anything behind in the queue', async (t) => {
  await drained(database);
  const { rows } = await database.query<{ n: bigint }>(
    'select count(*) as n from graphile_worker.jobs where attempts > 0',
  );
  t.equal(rows[0]!.n, 0n, 'no job was ever retried');
});
