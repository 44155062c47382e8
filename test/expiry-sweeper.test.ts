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
