// The TypeScript client against a real worker: one shared listener, results by cursor, and no
// result missed or delivered twice when its LISTEN connection is killed mid-stream; timeouts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { loadConfig } from '../src/config.ts';
import { migrate } from '../src/db/migrate.ts';
import { freePort } from '../src/embedded/embedded-default.ts';
import { PostgresCluster } from '../src/embedded/postgres-cluster.ts';
import { createLogger } from '../src/logger.ts';
import { startWorker } from '../src/worker/run-worker.ts';
import { createBillingClient, ResultTimeoutError, type StoredResult } from '../src/index.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { waitFor } from './helpers/wait.ts';
import { startTestWorker } from './helpers/worker.ts';
import { queryOnce } from '../chaos/query-once.ts';

const database = await createTestDatabase('client');
const worker = await startTestWorker(database);
const appName = `client-test-${process.pid}`;
const client = createBillingClient({ connectionString: database.url, applicationName: appName });
t.teardown(async () => {
  await client.close();
  await worker.stop();
  await database.drop();
});

async function listenerPids(db: TestDatabase, name: string): Promise<number[]> {
  const { rows } = await db.query<{ pid: number }>(
    'select pid from pg_stat_activity where datname = current_database() and application_name = $1 order by pid',
    [`${name}-listener`],
  );
  return rows.map((r) => r.pid);
}

t.test('typed results: applied and rejected, bigint money, replay and id_conflict', async (t) => {
  const opened = await client.openAccount({ account: 'c-1' });
  t.equal(opened.status, 'applied');
  t.equal(opened.code, 'ok');
  t.type(opened.seq, 'bigint');
  const big = 9_007_199_254_740_993n; // above 2^53: exact only as a bigint
  const credited = await client.credit({ id: 'c-credit-1', account: 'c-1', amount: big, metadata: { why: 'test' } });
  t.same(credited.balances, [{ account: 'c-1', balance: big, held: 0n }]);
  const rejected = await client.debit({ account: 'c-1', amount: big + 1n });
  t.equal(rejected.status, 'rejected');
  t.equal(rejected.code, 'insufficient_funds');
  t.match(rejected.message, /available/);
  t.same(rejected.balances, [], 'a rejection changed nothing and carries no balances (README, docs/client.md)');

  t.equal(credited.replayed, false, "this call's own job wrote it");
  const replay = await client.credit({ id: 'c-credit-1', account: 'c-1', amount: big, metadata: { why: 'test' } });
  t.equal(replay.seq, credited.seq, 'a replay resolves with the original result');
  t.equal(replay.replayed, true, 'and says it is a replay');
  const conflict = await client.credit({ id: 'c-credit-1', account: 'c-1', amount: 1n });
  t.equal(conflict.replayed, false, 'an id conflict is no replay');
  t.equal(conflict.code, 'id_conflict');
  t.equal(conflict.seq, null);
  t.equal(conflict.code === 'id_conflict' && conflict.original.seq, credited.seq);
  t.type(conflict.job_id, 'bigint');
  t.equal((await client.balance('c-1'))!.balance, big, 'one effect');
  // docs/client.md: the data has the SQL interface's names, a result those of billing.operations.
  t.same(
    Object.keys(credited).sort(),
    ['balances', 'code', 'created_at', 'id', 'job_id', 'message', 'replayed', 'seq', 'status', 'type'],
    "a result's fields are billing.operations' columns (and replayed)",
  );
  t.same(
    Object.keys(conflict).sort(),
    ['balances', 'code', 'id', 'job_id', 'message', 'original', 'replayed', 'seq', 'status', 'type'],
    "an id conflict's too",
  );
  t.same(
    Object.keys((await client.balance('c-1'))!).sort(),
    [
      'account',
      'available',
      'balance',
      'created_at',
      'currency',
      'held',
      'max_balance',
      'overdraft_limit',
      'status',
      'updated_at',
    ],
    "an account's fields are billing.accounts' columns",
  );
  t.type((await client.result('c-credit-1'))!.created_at, Date);
  t.equal(await client.balance('c-nobody'), undefined);

  const hold = await client.hold({ account: 'c-1', amount: 5n, hold: 'c-hold', ttl_seconds: 600 });
  t.equal(hold.code, 'ok');
  t.equal((await client.capture({ hold: 'c-hold', amount: 2n })).code, 'ok');
  t.equal((await client.release({ hold: 'c-hold' })).code, 'hold_closed');
  t.equal((await client.submit('transfer', { from: 'c-1', to: 'c-1', amount: 1n })).code, 'same_account');
  await t.rejects(
    client.credit({ id: 'x'.repeat(129), account: 'c-1', amount: 1n }),
    TypeError,
    'an id the worker would not file the result under',
  );
  await t.rejects(client.credit({ account: 'c-1', amount: 1 as unknown as bigint }), /amount must be a bigint/);
});

t.test('account policies: setLimits, freeze, unfreeze, closeAccount, and the policy in balance()', async (t) => {
  await client.openAccount({ account: 'c-pol' });
  t.same(await client.balance('c-pol').then((a) => [a!.overdraft_limit, a!.max_balance, a!.status]), [
    0n,
    null,
    'open',
  ]);
  const limits = await client.setLimits({ account: 'c-pol', overdraft_limit: 2n ** 60n, max_balance: 0n });
  t.equal(limits.code, 'ok');
  t.same(limits.balances, [{ account: 'c-pol', balance: 0n, held: 0n }], 'the balance it left, unchanged');
  t.same(
    await client.balance('c-pol').then((a) => [a!.overdraft_limit, a!.max_balance, a!.available]),
    [2n ** 60n, 0n, 0n],
    'a limit above 2^53 arrives exact',
  );
  t.equal((await client.debit({ account: 'c-pol', amount: 5n })).code, 'ok', 'into the overdraft');
  t.equal((await client.setLimits({ account: 'c-pol', max_balance: null })).code, 'ok');
  t.equal((await client.balance('c-pol'))!.max_balance, null, 'null removed the ceiling');
  t.equal((await client.freeze({ account: 'c-pol' })).code, 'ok');
  t.equal((await client.balance('c-pol'))!.status, 'frozen');
  const frozen = await client.debit({ account: 'c-pol', amount: 1n });
  t.equal(frozen.code, 'account_frozen');
  t.match(frozen.message, /frozen/);
  t.equal((await client.credit({ account: 'c-pol', amount: 5n })).code, 'ok');
  t.equal((await client.unfreeze({ account: 'c-pol' })).code, 'ok');
  t.equal((await client.closeAccount({ account: 'c-pol' })).code, 'ok');
  t.equal((await client.openAccount({ account: 'c-pol' })).code, 'account_closed');
  await t.rejects(
    client.setLimits({ account: 'c-pol', overdraft_limit: 5 as unknown as bigint }),
    /overdraft_limit must be a bigint/,
  );
});

t.test(
  'payload fields are named as in SQL (ttl_seconds, expires_at); a key a command does not take is refused, nothing enqueued',
  async (t) => {
    await client.openAccount({ account: 'c-names' });
    await client.credit({ account: 'c-names', amount: 100n });
    t.equal((await client.hold({ account: 'c-names', amount: 5n, hold: 'c-ttl', ttl_seconds: 600 })).code, 'ok');
    const at = new Date(Date.now() + 3_600_000);
    t.equal((await client.hold({ account: 'c-names', amount: 5n, hold: 'c-at', expires_at: at })).code, 'ok');
    const { rows } = await database.query<{ hold: string; in_seconds: number }>(
      `select hold, extract(epoch from expires_at - created_at)::float8 as in_seconds from billing.holds where hold in ('c-ttl', 'c-at') order by hold`,
    );
    const ttl = rows.find((r) => r.hold === 'c-ttl')!.in_seconds;
    // The rules' clock reaches them as a JS Date (whole milliseconds) while created_at keeps
    // microseconds: expires_at may come up to 1 ms before created_at + 600 s.
    t.ok(ttl > 599.999 && ttl < 660, `ttl_seconds reached the worker: the hold expires ${ttl} s after its creation`);
    t.ok(rows.find((r) => r.hold === 'c-at')!.in_seconds > 3000, 'expires_at reached the worker');

    const jobsBefore = (await database.query<{ n: bigint }>('select count(*) as n from graphile_worker.jobs')).rows[0]!
      .n;
    const camel = { account: 'c-names', amount: 5n, hold: 'c-camel', ttlSeconds: 600 } as unknown as Parameters<
      typeof client.hold
    >[0];
    await t.rejects(client.hold(camel), {
      name: 'TypeError',
      message: /hold: unknown field "ttlSeconds"; it takes .*ttl_seconds/,
    });
    await t.rejects(
      client.credit({ account: 'c-names', amount: 1n, note: 'x' } as unknown as Parameters<typeof client.credit>[0]),
      { name: 'TypeError', message: /credit: unknown field "note"/ },
    );
    t.equal(client.pendingCount, 0);
    t.equal(
      (await database.query<{ n: bigint }>('select count(*) as n from graphile_worker.jobs')).rows[0]!.n,
      jobsBefore,
      'nothing enqueued',
    );
    t.equal((await database.query(`select from billing.holds where hold = 'c-camel'`)).rowCount, 0);
  },
);

t.test('many concurrent callers share one LISTEN connection', async (t) => {
  await client.openAccount({ account: 'c-many' });
  const results = await Promise.all(
    Array.from({ length: 300 }, (_, i) =>
      client.credit({ id: `c-many-${i}`, account: 'c-many', amount: BigInt(i + 1) }),
    ),
  );
  t.equal(results.length, 300);
  t.ok(
    results.every((r, i) => r.id === `c-many-${i}` && r.code === 'ok'),
    'each caller got its own result',
  );
  t.equal(new Set(results.map((r) => r.seq)).size, 300);
  t.equal((await client.balance('c-many'))!.balance, (300n * 301n) / 2n);
  t.same((await listenerPids(database, appName)).length, 1, 'one listener connection for all of them');
  t.equal(client.pendingCount, 0);
});

t.test(
  'the LISTEN backend is terminated mid-stream: pending calls resolve, the iterator misses nothing and repeats nothing',
  async (t) => {
    const streamClient = createBillingClient({ connectionString: database.url, applicationName: `${appName}-stream` });
    t.teardown(() => streamClient.close());
    await streamClient.openAccount({ account: 'c-stream' });
    const start = await streamClient.lastSeq();
    const seen: StoredResult[] = [];
    const stop = new AbortController();
    const iterating = (async () => {
      for await (const result of streamClient.results({ after: start, signal: stop.signal, batchSize: 50 }))
        seen.push(result);
    })();

    const total = 600;
    const killed: number[] = [];
    let resolved = 0;
    // Four kills spread over the stream by its progress (after a fifth of the calls have their
    // result, two fifths, ...), each of a listener that reconnected after the kill before.
    const killer = (async () => {
      for (let round = 1; round <= 4; round++) {
        const pids = await waitFor(
          `a listener to kill, with ${(round * total) / 5} calls resolved`,
          async () => {
            if (resolved < (round * total) / 5) return undefined;
            const pids = await listenerPids(database, `${appName}-stream`);
            return pids.length > 0 && pids.every((pid) => !killed.includes(pid)) ? pids : undefined;
          },
          60_000,
        );
        for (const pid of pids) {
          await database.query('select pg_terminate_backend($1)', [pid]);
          killed.push(pid);
        }
      }
    })();
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < total; i++) {
      const call = streamClient.credit({ id: `c-stream-${i}`, account: 'c-stream', amount: 1n });
      calls.push(call.finally(() => resolved++));
      // Pacing, so that the stream spans the kills: not a wait for anything.
      if (i % 50 === 49) await new Promise((resolve) => setTimeout(resolve, 40));
    }
    const results = await Promise.all(calls);
    await killer;
    t.equal(results.length, total, 'every pending call resolved');
    t.equal(killed.length, 4, 'a listener backend terminated four times mid-stream');
    // A terminated backend stays in pg_stat_activity until it has exited: wait for the new one alone.
    const pidsNow = await waitFor('a listener again, on a new backend', async () => {
      const pids = await listenerPids(database, `${appName}-stream`);
      return pids.length === 1 && !killed.includes(pids[0]!) ? pids : undefined;
    });
    t.equal(pidsNow.length, 1, 'the listener reconnected with a new backend');

    const { rows } = await database.query<{ seq: bigint }>(
      'select seq from billing.operations where seq > $1 order by seq',
      [start],
    );
    await waitFor('the iterator to catch up', async () => (seen.length >= rows.length ? true : undefined));
    stop.abort();
    await iterating;
    t.same(
      seen.map((r) => r.seq),
      rows.map((r) => r.seq),
      'the iterator yielded every committed result once, in seq order',
    );
    const streamIds = seen.filter((r) => r.id.startsWith('c-stream-')).map((r) => r.id);
    t.equal(new Set(streamIds).size, total, 'each command once');
    t.equal(streamIds.length, total, 'and no duplicates');
  },
);

t.test("results({ after: 'now' }): only results committed after the iteration began", async (t) => {
  const before = await client.lastSeq();
  t.ok(before > 0n, 'earlier results exist');
  const iterator = client.results({ after: 'now', signal: AbortSignal.timeout(60_000) });
  const first = iterator.next(); // the iteration begins: the cursor is read now
  const a = await client.credit({ account: 'c-1', amount: 1n });
  const b = await client.credit({ account: 'c-1', amount: 1n });
  const { value } = await first;
  await iterator.return();
  t.ok(value && value.seq > before, `the first is a new result (#${value?.seq}), not #1`);
  t.ok(value && [a.id, b.id].includes(value.id), 'one of the commands sent after');
});

t.test('a missing connectionString is our own clear error, at once', async (t) => {
  for (const options of [{}, { connectionString: undefined }, { connectionString: '' }])
    t.throws(() => createBillingClient(options as never), {
      name: 'TypeError',
      message:
        /^createBillingClient: connectionString is required \(the billing database, e\.g\. process\.env\.DATABASE_URL\)/,
    });
});

t.test('results(): a second iterator from an old cursor replays the same sequence', async (t) => {
  const first: bigint[] = [];
  for await (const result of client.results({ after: 0n, batchSize: 7 })) {
    first.push(result.seq);
    if (first.length === 20) break;
  }
  t.same(
    first,
    Array.from({ length: 20 }, (_, i) => BigInt(i + 1)),
  );
});

t.test('timeout: no worker, the call rejects with a clear error; the command is still enqueued', async (t) => {
  const idle = await createTestDatabase('client_idle');
  const idleClient = createBillingClient({ connectionString: idle.url, timeoutMs: 400 });
  t.teardown(async () => {
    await idleClient.close();
    await idle.drop();
  });
  const error = await idleClient.credit({ id: 'c-late', account: 'c-1', amount: 1n }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(error, ResultTimeoutError);
  t.match(
    (error as Error).message,
    /no result for command c-late \(job \d+\) after 400 ms: it is enqueued and may still be applied later/,
  );
  const { rows } = await idle.query("select 1 from graphile_worker.jobs where task_identifier = 'billing/credit'");
  t.equal(rows.length, 1, 'the job waits for a worker');
  t.equal(idleClient.pendingCount, 0);
  const perCall = await idleClient.debit({ account: 'x', amount: 1n }, { timeoutMs: 50 }).then(
    () => 'resolved',
    (e: unknown) => e,
  );
  t.type(perCall, ResultTimeoutError);
});

t.test('close(): pending calls reject, iterators end', async (t) => {
  const idle = await createTestDatabase('client_close');
  t.teardown(() => idle.drop());
  const closing = createBillingClient({ connectionString: idle.url, timeoutMs: 0 });
  const pending = closing.credit({ account: 'a', amount: 1n }).then(
    () => 'resolved',
    (e: unknown) => e,
  );
  const iterating = (async () => {
    let count = 0;
    for await (const _ of closing.results()) count++;
    return count;
  })();
  await waitFor('the call to be enqueued', async () =>
    (await idle.query('select 1 from graphile_worker.jobs')).rows.length ? true : undefined,
  );
  await closing.close();
  t.match(await pending, { name: 'ClientClosedError', message: /closed before the result came/ });
  t.equal(await iterating, 0);
});

t.test(
  'a PostgreSQL restart (graphile-worker issue 541): LISTEN comes back, a pending call resolves, the iterator continues',
  async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pg-billing-client-restart-'));
    const cluster = new PostgresCluster({
      dataDir: path.join(dir, 'pgdata'),
      port: await freePort(),
      initdbSync: false,
    });
    t.teardown(async () => {
      await cluster.stop('immediate').catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    });
    await cluster.start();
    const url = cluster.databaseUrl('postgres');
    await migrate({ connectionString: url });
    // A worker that loses its server exits in production (a supervisor restarts it); here it is replaced by hand.
    const startClusterWorker = () =>
      startWorker(
        { ...loadConfig({}), databaseUrl: url, httpPort: -1, concurrency: 10 },
        createLogger('silent'),
        () => {},
      );
    const firstWorker = await startClusterWorker();

    const name = `${appName}-restart`;
    const restartClient = createBillingClient({ connectionString: url, applicationName: name, timeoutMs: 60_000 });
    t.teardown(() => restartClient.close());
    const seen: StoredResult[] = [];
    const stop = new AbortController();
    const iterating = (async () => {
      for await (const result of restartClient.results({ after: 0n, signal: stop.signal })) seen.push(result);
    })();
    t.equal((await restartClient.openAccount({ account: 'r-1' })).code, 'ok');
    t.equal((await restartClient.credit({ id: 'r-before', account: 'r-1', amount: 10n })).code, 'ok');
    const listenerBefore = await waitFor('the listener', async () => (await listenerBackends(url, name))[0]);

    // No worker while the server restarts: this call is pending across the restart.
    await firstWorker.stop();
    const pending = restartClient.credit({ id: 'r-across', account: 'r-1', amount: 5n });
    await waitFor('the job', async () =>
      (await queryOnce(url, "select 1 from graphile_worker.jobs where task_identifier = 'billing/credit'")).length
        ? true
        : undefined,
    );
    await cluster.restart({ mode: 'immediate' });
    const secondWorker = await startClusterWorker();
    t.teardown(() => secondWorker.stop());

    const across = await pending;
    t.equal(across.code, 'ok', 'the call pending across the restart resolved');
    t.same(across.balances, [{ account: 'r-1', balance: 15n, held: 0n }]);
    // It listens again (waitFor fails after its deadline otherwise). The new connection shows in
    // pg_stat_activity before its LISTEN has run: what is awaited is the LISTEN, not the connection.
    const listenerAfter = await waitFor('the client LISTENs again', async () =>
      (await listenerBackends(url, name)).find((backend) => /^listen "billing_results"$/i.test(backend.query)),
    );
    t.not(listenerAfter.pid, listenerBefore.pid, 'a new LISTEN connection');
    t.equal(
      (await restartClient.credit({ id: 'r-after', account: 'r-1', amount: 1n })).code,
      'ok',
      'new calls work after the restart',
    );

    await waitFor('the iterator', async () => (seen.length >= 4 ? true : undefined));
    stop.abort();
    await iterating;
    t.same(
      seen.map((r) => r.id),
      ['open_account', 'r-before', 'r-across', 'r-after'].map((id, i) => (i === 0 ? seen[0]!.id : id)),
      'the iterator continued after the restart, each result once',
    );
    // An immediate stop loses the sequence's cached values, so seq jumps: gaps, never a skipped row.
    const stored = await queryOnce<{ seq: string }>(url, 'select seq from billing.operations order by seq');
    t.same(
      seen.map((r) => String(r.seq)),
      stored.map((r) => r.seq),
      'every stored result, in seq order',
    );
  },
);

function listenerBackends(url: string, name: string): Promise<{ pid: number; query: string }[]> {
  return queryOnce(url, 'select pid, query from pg_stat_activity where application_name = $1', [`${name}-listener`]);
}
