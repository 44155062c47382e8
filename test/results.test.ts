import pg from 'pg';
import t from 'tap';
import { applyBatch } from '../src/ledger/apply.ts';
import { parseCommand } from '../src/commands/parse.ts';
import { createTestDatabase } from './helpers/database.ts';
import { balanceOf, drained, enqueue, resultOf, run } from './helpers/ledger.ts';
import { waitFor } from './helpers/wait.ts';
import { startTestWorker } from './helpers/worker.ts';

const database = await createTestDatabase('results');
t.teardown(() => database.drop());

async function session(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  return client;
}

/** Reads results the way a consumer does: by cursor, and moves the cursor to the last row read. */
async function readAfter(cursor: bigint): Promise<{ ids: string[]; cursor: bigint }> {
  const { rows } = await database.query<{ id: string; seq: bigint }>(
    'select id, seq from billing.operations where seq > $1 order by seq',
    [cursor],
  );
  return { ids: rows.map((r) => r.id), cursor: rows.length ? rows[rows.length - 1]!.seq : cursor };
}

/** Whether a results notification covers `seq` (a notification carries its transaction's highest seq). */
function notified(payloads: string[], seq: bigint): boolean {
  return payloads.some((p) => {
    const notice = JSON.parse(p) as { seq?: string };
    return notice.seq !== undefined && BigInt(notice.seq) >= seq;
  });
}

/** Waits until some backend of the test database waits for a lock that `holder` holds. */
async function waitUntilWaitingOn(holder: pg.Client): Promise<void> {
  const {
    rows: [me],
  } = await holder.query<{ pid: number }>('select pg_backend_pid() as pid');
  await waitFor('a session waiting on the seq lock', async () => {
    const { rows } = await database.query('select 1 from pg_stat_activity where $1 = any(pg_blocking_pids(pid))', [
      me!.pid,
    ]);
    return rows.length ? true : undefined;
  });
}

const insertResult = (client: pg.Client, id: string) =>
  client.query(
    `insert into billing.operations (id, type, status, code, request, fingerprint)
   values ($1, 'credit', 'rejected', 'account_not_found', '{}', 'x')`,
    [id],
  );

t.test('the hazard: plain identity numbers commit out of order and a cursor skips a row', async (t) => {
  const early = await session();
  const late = await session();
  await early.query('begin');
  await insertResult(early, 'hazard-early'); // takes the lower seq, commits last
  await late.query('begin');
  await insertResult(late, 'hazard-late');
  await late.query('commit');
  const first = await readAfter(0n);
  t.same(first.ids, ['hazard-late']);
  await early.query('commit');
  const second = await readAfter(first.cursor);
  t.same(second.ids, [], 'hazard-early committed behind the cursor: a consumer would never see it');
  await Promise.all([early.end(), late.end()]);
});

t.test('the service: seqs are handed out under a lock held to commit, so the cursor never skips', async (t) => {
  const { cursor: start } = await readAfter(0n);
  const account = 'cursor-acct';
  await database.query("insert into billing.accounts (account, currency) values ($1, 'USD')", [account]);
  // Transaction A has taken its seq (holding the seq lock) and has not committed yet.
  const a = await session();
  await a.query('begin');
  await a.query('select from billing.result_seq_lock for update');
  await insertResult(a, 'cursor-a');
  // Batch B, through the real apply path, starts later and must not commit a higher seq first.
  const parsed = parseCommand({
    task: 'credit',
    payload: { id: 'cursor-b', account, amount: '5' },
    defaultId: 'x',
    defaultCurrency: 'USD',
  });
  const b = applyBatch(database.pool, [{ parsed, jobId: null }]);
  await waitUntilWaitingOn(a);
  const during = await readAfter(start);
  t.same(during.ids, [], 'nothing is readable while A is open: B waits for the seq lock');
  await a.query('commit');
  await b;
  const after = await readAfter(during.cursor);
  t.same(after.ids, ['cursor-a', 'cursor-b'], 'both, in commit order, none skipped');
  await a.end();
});

t.test('no lock a client or reader session can take stalls a batch', async (t) => {
  const account = 'trust-acct';
  await database.query("insert into billing.accounts (account, currency) values ($1, 'USD')", [account]);
  const client = await session();
  const reader = await session();
  t.teardown(() => Promise.all([client.end(), reader.end()]));
  await client.query('set role billing_client');
  await reader.query('set role billing_reader');
  // Every advisory lock the ledger ever used (8bf903f: class 'bill' per hashtext('id:'/'hold:' key),
  // class 'bils' for the seq), held by both; they no longer protect anything, so they stall nothing.
  const keys = ['id:trust-1', 'hold:trust-1', 'id:trust-2'];
  for (const s of [client, reader]) {
    await s.query('begin');
    await s.query('select pg_advisory_xact_lock_shared(1651076204, hashtext(k)) from unnest($1::text[]) as k', [keys]);
    await s.query('select pg_advisory_xact_lock_shared(1651076211, 0)');
  }
  // The reader may read the lock tables, which blocks no row lock; it holds that in a transaction.
  await reader.query('lock table billing.lock_slots, billing.result_seq_lock in access share mode');
  // Neither can lock a ledger row: FOR UPDATE/SHARE and stronger LOCK TABLE modes need UPDATE.
  const refused = async (s: pg.Client, statement: string): Promise<string | undefined> => {
    await s.query('savepoint attempt');
    try {
      await s.query(statement);
      return 'granted';
    } catch (error) {
      return (error as { code?: string }).code;
    } finally {
      await s.query('rollback to savepoint attempt');
    }
  };
  for (const [name, s] of [
    ['client', client],
    ['reader', reader],
  ] as const) {
    for (const statement of [
      'select from billing.lock_slots for key share',
      'select from billing.result_seq_lock for key share',
      'select from billing.accounts for key share',
      'select from billing.holds for key share',
      'select from billing.operations for key share',
      'lock table billing.lock_slots in row share mode',
      'lock table billing.result_seq_lock in row share mode',
      'lock table billing.accounts in row share mode',
    ])
      t.equal(await refused(s, statement), '42501', `${name}: ${statement} is refused`);
  }
  const credit = (id: string) =>
    parseCommand({ task: 'credit', payload: { id, account, amount: '5' }, defaultId: id, defaultCurrency: 'USD' });
  const hold = parseCommand({
    task: 'hold',
    payload: { id: 'trust-1', account, amount: '2' },
    defaultId: 'trust-1',
    defaultCurrency: 'USD',
  });
  // With lock_timeout set, a batch that had to wait for either session would fail, not hang.
  const {
    rows: [setting],
  } = await database.query<{ lock_timeout: string }>('show lock_timeout');
  t.equal(
    setting!.lock_timeout,
    '0',
    'the test pool waits for locks: a stalled batch would hang the test, so it is timed below',
  );
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const applied = await Promise.race([
    applyBatch(database.pool, [
      { parsed: credit('trust-2'), jobId: null },
      { parsed: hold, jobId: null },
    ]),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('the batch waited on a client or reader lock')), 10_000);
    }),
  ]).finally(() => clearTimeout(timer));
  t.same(
    applied.outcomes.map((o) => (o.kind === 'recorded' ? o.result.code : o.kind)),
    ['ok', 'ok'],
  );
  t.comment(`batch applied in ${Math.round(performance.now() - started)} ms while both sessions held their locks`);
  await Promise.all([client.query('rollback'), reader.query('rollback')]);
});

t.test('through the queue', async (t) => {
  const worker = await startTestWorker(database);
  t.teardown(() => worker.stop());

  await t.test('add_job inside a rolled-back transaction has no effect; committed, exactly one', async (t) => {
    await run(database, 'open_account', { id: 'tx-open', account: 'tx-1' });
    const app = await session();
    await app.query('begin');
    await app.query('create temp table app_orders (id int)'); // the caller's own business rows
    await app.query(
      "select graphile_worker.add_job('billing/credit', json_build_object('id', 'tx-credit-1', 'account', 'tx-1', 'amount', '10'))",
    );
    await app.query('rollback');
    await app.query('begin');
    await app.query(
      "select graphile_worker.add_job('billing/credit', json_build_object('id', 'tx-credit-2', 'account', 'tx-1', 'amount', '20'))",
    );
    await app.query('commit');
    await app.end();
    t.equal((await resultOf(database, 'tx-credit-2')).code, 'ok');
    await drained(database);
    const { rows } = await database.query("select 1 from billing.operations where id = 'tx-credit-1'");
    t.equal(rows.length, 0, 'the rolled-back command never ran');
    t.equal((await balanceOf(database, 'tx-1'))!.balance, 20n);
  });

  await t.test('notifications: one small payload per transaction, whatever the metadata size', async (t) => {
    const listener = await session();
    const payloads: string[] = [];
    listener.on('notification', (n) => payloads.push(n.payload ?? ''));
    await listener.query('listen billing_results');
    const metadata = { note: 'x'.repeat(3900) };
    const ids = Array.from({ length: 40 }, (_, i) => `big-meta-${i}`);
    for (const id of ids) await enqueue(database, 'credit', { id, account: 'tx-1', amount: '1', metadata });
    for (const id of ids) t.equal((await resultOf(database, id)).code, 'ok');
    const last = await resultOf(database, ids[ids.length - 1]!);
    // The notification of the last result's transaction is the last one these commands send.
    await waitFor('the notification of the last result', () => (notified(payloads, last.seq) ? true : undefined));
    await listener.end();
    t.ok(payloads.length >= 1, `${payloads.length} notifications for 40 commands`);
    t.ok(payloads.length <= ids.length);
    t.ok(
      payloads.every((p) => Buffer.byteLength(p) < 8000),
      'every payload under the 8000-byte limit',
    );
    const stored = await resultOf(database, 'big-meta-0');
    t.same((stored.request as { metadata: unknown }).metadata, metadata, 'metadata stored verbatim');
  });

  await t.test('an id conflict is notified', async (t) => {
    const listener = await session();
    const payloads: string[] = [];
    listener.on('notification', (n) => payloads.push(n.payload ?? ''));
    await listener.query('listen billing_results');
    await run(database, 'credit', { id: 'conflict-1', account: 'tx-1', amount: '1' });
    await enqueue(database, 'credit', { id: 'conflict-1', account: 'tx-1', amount: '2' });
    await drained(database);
    // A listener gets notifications in commit order: once the notification of a command enqueued
    // after the conflict has arrived, every notification of the conflict has too.
    const fence = await run(database, 'credit', { id: 'conflict-fence', account: 'tx-1', amount: '1' });
    await waitFor('the notification of a later command', () => (notified(payloads, fence.seq) ? true : undefined));
    await listener.end();
    const conflicts = payloads.map((p) => JSON.parse(p)).filter((p) => p.code === 'id_conflict');
    t.equal(conflicts.length, 1);
    t.equal(conflicts[0].id, 'conflict-1');
  });
});
