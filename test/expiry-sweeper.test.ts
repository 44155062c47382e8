import t from 'tap';
import { createTestDatabase } from './helpers/database.ts';
import { balanceOf, run } from './helpers/ledger.ts';
import { startTestWorker } from './helpers/worker.ts';
import { waitFor } from './helpers/wait.ts';

// A hold's expiry commits within 5 s of due even when its expiry job cannot run: here the job is
// pushed an hour away (as a frozen worker's prefetched job or a long backoff would hold it), and the
// worker's expiry sweeper must release the hold anyway; a job that runs after it changes nothing.

const database = await createTestDatabase('expiry_sweeper');
const worker = await startTestWorker(database);
t.teardown(async () => {
  await worker.stop();
  await database.drop();
});

t.test('a hold whose expiry job is held up is expired by the sweeper within 5 s of due', async (t) => {
  await run(database, 'open_account', { id: 'sw-open', account: 'sw-1' });
  await run(database, 'credit', { id: 'sw-credit', account: 'sw-1', amount: '100' });
  await run(database, 'hold', { id: 'sw-hold', account: 'sw-1', amount: '40', ttl_seconds: 2 });
  const { rows: moved } = await database.query<{ id: bigint }>(
    `select id from graphile_worker.reschedule_jobs(
       array(select id from graphile_worker.jobs where key = 'expire:sw-hold'), run_at => now() + interval '1 hour')`,
  );
  t.equal(moved.length, 1, 'the expiry job is pushed an hour away');

  const expired = await waitFor(
    'the expiry result',
    async () =>
      (
        await database.query<{ late_ms: number; job_id: bigint | null }>(
          `select extract(epoch from o.created_at - h.expires_at) * 1000 as late_ms, o.job_id
     from billing.operations o join billing.holds h on o.id = 'expire:' || h.hold where h.hold = 'sw-hold'`,
        )
      ).rows[0],
    20_000,
  );
  t.ok(expired.late_ms >= 0, `not before due (${Math.round(expired.late_ms)} ms after)`);
  t.ok(expired.late_ms < 5_000, `within 5 s of due (${Math.round(expired.late_ms)} ms after)`);
  t.equal(expired.job_id, null, 'applied by the sweeper, not by the job');
  t.same(
    await balanceOf(database, 'sw-1'),
    { balance: 100n, held: 0n, available: 100n },
    'the money is available again',
  );
  const {
    rows: [hold],
  } = await database.query<{ status: string }>("select status from billing.holds where hold = 'sw-hold'");
  t.equal(hold!.status, 'expired');

  // The sweeper deletes the job it made needless (one no worker had fetched).
  const { rows: left } = await database.query('select 1 from graphile_worker.jobs where id = $1', [moved[0]!.id]);
  t.equal(left.length, 0, 'the expiry job is gone');
  // A job that a worker had fetched before the sweep runs anyway: it finds the hold closed.
  const { rows: late } = await database.query<{ id: bigint }>(
    `select (graphile_worker.add_job('billing/expire_hold', '{"hold": "sw-hold"}'::json)).id`,
  );
  await waitFor(
    'the late expiry job to complete',
    async () =>
      (await database.query('select 1 from graphile_worker.jobs where id = $1', [late[0]!.id])).rows.length === 0
        ? true
        : undefined,
    20_000,
  );
  const { rows: conflicts } = await database.query("select 1 from billing.id_conflicts where id = 'expire:sw-hold'");
  t.equal(conflicts.length, 0, 'the late job changed nothing: no id conflict');
  const { rows: results } = await database.query("select 1 from billing.operations where id = 'expire:sw-hold'");
  t.equal(results.length, 1, 'one result');
  t.same(await balanceOf(database, 'sw-1'), { balance: 100n, held: 0n, available: 100n });
});

t.test('the sweeper expires several holds of one account in one call as the job would, serially', async (t) => {
  await run(database, 'open_account', { id: 'sw2-open', account: 'sw-2' });
  await run(database, 'credit', { id: 'sw2-credit', account: 'sw-2', amount: '100' });
  // Hold ids whose JSON needs escapes: the sweeper's request and fingerprint (written in SQL) must
  // be the job's (written in TypeScript), or the job that runs after it is an id conflict.
  const holds = ['sw2 "q\\b"', 'sw2 \t\u0001\u001f', 'sw2 \u2028🙂é'];
  // One instant for the three, so that they fall due together (one call).
  const { rows: instant } = await database.query<{ at: string }>(
    `select to_char((now() + interval '6 s') at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as at`,
  );
  for (const [i, hold] of holds.entries()) {
    const created = await run(database, 'hold', {
      id: `sw2-hold-${i}`,
      hold,
      account: 'sw-2',
      amount: String(10 * (i + 1)),
      expires_at: instant[0]!.at,
    });
    // Messages name holds by number: a U+2028 in a TAP line would break it in two.
    t.equal(created.code, 'ok', `hold ${i} made`);
  }
  await database.query(
    `select graphile_worker.reschedule_jobs(array(select id from graphile_worker.jobs where key = any($1::text[])),
       run_at => now() + interval '1 hour')`,
    [holds.map((hold) => `expire:${hold}`)],
  );
  const results = await waitFor(
    'the three expiry results',
    async () => {
      const { rows } = await database.query<{
        id: string;
        seq: bigint;
        balances: { held: string }[];
        job_id: bigint | null;
      }>(
        `select id, seq, balances, job_id from billing.operations where type = 'expire' and id = any($1::text[]) order by seq`,
        [holds.map((hold) => `expire:${hold}`)],
      );
      return rows.length === holds.length ? rows : undefined;
    },
    20_000,
  );
  t.ok(
    results.every((r) => r.job_id === null),
    'all by the sweeper',
  );
  // Replayed in seq order, each result leaves the account's held where the one before left it,
  // less its own hold; the journal says the same, entry by entry.
  const amounts = new Map(holds.map((hold, i) => [`expire:${hold}`, BigInt(10 * (i + 1))]));
  let held = 60n;
  for (const [i, result] of results.entries()) {
    held -= amounts.get(result.id)!;
    t.equal(BigInt(result.balances[0]!.held), held, `expiry ${i + 1} in seq order leaves held ${held}`);
  }
  const { rows: entries } = await database.query<{ operation_id: string; held_delta: bigint; held_after: bigint }>(
    `select e.operation_id, e.held_delta, e.held_after from billing.entries as e
     join billing.operations as o on o.id = e.operation_id where e.account = 'sw-2' and o.type = 'expire' order by e.id`,
  );
  t.same(
    entries.map((e) => e.operation_id),
    results.map((r) => r.id),
    'journal entries in the order of the seqs',
  );
  t.same(
    entries.map((e) => e.held_after),
    results.map((r) => BigInt(r.balances[0]!.held)),
    'each entry leaves what its result says',
  );
  t.same(await balanceOf(database, 'sw-2'), { balance: 100n, held: 0n, available: 100n });

  // Their jobs, run now, are replays: no conflict, no second result.
  const { rows: jobs } = await database.query<{ id: bigint }>(
    `select (graphile_worker.add_job('billing/expire_hold', json_build_object('hold', h))).id from unnest($1::text[]) as h`,
    [holds],
  );
  await waitFor(
    'the late expiry jobs to complete',
    async () =>
      (
        await database.query('select 1 from graphile_worker.jobs where id = any($1::bigint[])', [
          jobs.map((job) => job.id),
        ])
      ).rows.length === 0
        ? true
        : undefined,
    20_000,
  );
  const { rows: conflicts } = await database.query('select 1 from billing.id_conflicts where id = any($1::text[])', [
    holds.map((hold) => `expire:${hold}`),
  ]);
  t.equal(conflicts.length, 0, 'the jobs were replays of the sweeper results (same request and fingerprint)');
});

t.test('the sweeper expires a hold on an account that uses its overdraft, and on a frozen one', async (t) => {
  // The sweep writes journal entries itself (sql/0027): each must carry the account's limits, or
  // an account still below zero after the release breaks the entry's CHECK and nothing expires.
  await run(database, 'open_account', { id: 'sw3-open', account: 'sw-3' });
  await run(database, 'set_limits', { id: 'sw3-limits', account: 'sw-3', overdraft_limit: '100', max_balance: '500' });
  await run(database, 'debit', { id: 'sw3-debit', account: 'sw-3', amount: '60' });
  await run(database, 'hold', { id: 'sw3-hold', account: 'sw-3', amount: '30', ttl_seconds: 1 });
  await run(database, 'freeze', { id: 'sw3-freeze', account: 'sw-3' });
  await database.query(
    `select graphile_worker.reschedule_jobs(
       array(select id from graphile_worker.jobs where key = 'expire:sw3-hold'), run_at => now() + interval '1 hour')`,
  );
  const expired = await waitFor(
    'the expiry result',
    async () =>
      (
        await database.query<{ job_id: bigint | null }>(
          "select job_id from billing.operations where id = 'expire:sw3-hold'",
        )
      ).rows[0],
    20_000,
  );
  t.equal(expired.job_id, null, 'applied by the sweeper');
  t.same(
    await balanceOf(database, 'sw-3'),
    { balance: -60n, held: 0n, available: -60n },
    'held released, still in overdraft',
  );
  const { rows: entries } = await database.query<{ overdraft_limit: bigint; max_balance: bigint | null }>(
    "select overdraft_limit, max_balance from billing.entries where operation_id = 'expire:sw3-hold'",
  );
  t.same(entries, [{ overdraft_limit: 100n, max_balance: 500n }], 'the entry carries the limits it was written under');
});
