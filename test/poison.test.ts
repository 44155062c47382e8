import { readFileSync } from 'node:fs';
import t from 'tap';
import { deployedMallocArenaMax, deployedNodeOptions } from '../bench/workers.ts';
import { startWorkerProcess } from './helpers/cli.ts';
import { connectAsClientRole } from './helpers/client-role.ts';
import { createTestDatabase } from './helpers/database.ts';
import { balanceOf, drained, resultOf, run } from './helpers/ledger.ts';

// Issue 9, item 4: a payload of any size or depth ends with one invalid_command result, decided
// before it is parsed; the worker, a real process with the deployed V8 limits (the Dockerfile's
// NODE_OPTIONS and MALLOC_ARENA_MAX), neither crashes nor restarts. On 8bf903f the 700,000 `{}`
// killed every worker run.
const database = await createTestDatabase('poison');
const { worker } = await startWorkerProcess(database.url, {
  NODE_OPTIONS: deployedNodeOptions,
  MALLOC_ARENA_MAX: deployedMallocArenaMax,
  BILLING_CONCURRENCY: '10',
});
const workerPid = worker.child.pid!;

const client = await connectAsClientRole(database);

t.teardown(async () => {
  await client.end();
  await worker.stop();
  await database.drop();
});

for (const [type, payload] of [
  ['open_account', { id: 'poison-open', account: 'poison' }],
  ['credit', { id: 'poison-fund', account: 'poison', amount: '100' }],
] as const) {
  if ((await run(database, type, payload)).code !== 'ok') throw new Error(`setup ${payload.id}`);
}

/** Peak resident memory of the worker process so far, in MB (Linux). */
function peakRssMb(): number {
  const status = readFileSync(`/proc/${workerPid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

const poisons: { name: string; id: string; json: () => string; send: 'submit' | 'add_job'; message: RegExp }[] = [
  {
    name: '700,000 {} in metadata (2.1 MB)',
    id: 'poison-empties',
    json: () =>
      `{"id":"poison-empties","account":"poison","amount":"1","metadata":{"list":[${'{},'.repeat(699_999)}{}]}}`,
    send: 'submit',
    message: /^payload: is 2100\d{3} bytes, at most 65536 are accepted$/,
  },
  {
    name: '50 MB of metadata',
    id: 'poison-50mb',
    json: () =>
      `{"id":"poison-50mb","account":"poison","amount":"1","metadata":{"pad":"${'x'.repeat(50 * 1024 * 1024)}"}}`,
    send: 'add_job',
    message: /^payload: is 524\d+ bytes/,
  },
  {
    name: '5,000 levels deep, under 64 KiB',
    id: 'poison-deep',
    json: () =>
      `{"id":"poison-deep","account":"poison","amount":"1","metadata":${'['.repeat(5_000)}${']'.repeat(5_000)}}`,
    send: 'submit',
    message: /^metadata: must be nested at most 8 levels deep$/,
  },
];

t.test('each poison payload ends with one invalid_command result; the worker lives on', async (t) => {
  for (const poison of poisons) {
    const json = poison.json();
    if (poison.send === 'submit') {
      await client.query("select billing.submit('credit', $1::json)", [json]);
    } else {
      await database.query("select graphile_worker.add_job('billing/credit', $1::json)", [json]);
    }
    // A bound for a failure report only: under a loaded machine 50 MB takes a while to travel.
    const result = await resultOf(database, poison.id, 240_000).catch(async (error: Error) => {
      const { rows } = await database.query('select id, attempts, last_error, locked_at from graphile_worker.jobs');
      throw new Error(`${error.message}; jobs ${JSON.stringify(rows)}; worker log:\n${worker.output.slice(-3000)}`);
    });
    t.match(result, { status: 'rejected', code: 'invalid_command', message: poison.message }, poison.name);
    const { rows } = await database.query<{ n: bigint }>('select count(*) as n from billing.operations where id = $1', [
      poison.id,
    ]);
    t.equal(rows[0]!.n, 1n, 'one result');
    t.ok(JSON.stringify(result.request).length < 400, 'the request stored is a summary, not the payload');
    t.ok(worker.running, 'the worker process is still running');
    t.comment(`${poison.name}: worker peak RSS ${peakRssMb().toFixed(0)} MB`);
  }
  // A command behind them is answered as usual.
  const after = await run(database, 'credit', { id: 'poison-after', account: 'poison', amount: '5' });
  t.equal(after.code, 'ok');
  t.equal((await balanceOf(database, 'poison'))!.balance, 105n, 'only the good credits applied');
  // A job is completed by a statement of its own after its result commits: wait for the queue.
  await drained(database);
  const { rows } = await database.query<{ n: bigint }>(
    "select count(*) as n from graphile_worker.jobs where task_identifier like 'billing/%'",
  );
  t.equal(rows[0]!.n, 0n, 'nothing left in the queue, nothing retrying');
  t.equal(worker.child.pid, workerPid, 'the same process throughout');
  t.notMatch(worker.output, /heap out of memory|"level":(50|60)/, 'no crash, no error logged');
});
