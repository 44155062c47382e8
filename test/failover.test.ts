// A real failover (SPEC guarantee 9): a primary and a synchronous standby of their own, two
// `billing worker` processes and a producer on the two-host URL, the primary SIGKILLed (every server
// process) under load, the standby promoted. Then: every result read before the kill is on the new
// primary, every acknowledged enqueue has exactly one result, `billing verify` passes, and results
// flow again within 10 s of the promotion (measured from the first new result, not slept for).
// Skipped, with the reason, where PostgreSQL's server binaries are not installed.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import t, { type Test } from 'tap';
import { migrate } from '../src/db/migrate.ts';
import { createPool } from '../src/db/pool.ts';
import { CliProcess, runCli } from './helpers/cli.ts';
import { freePortsFrom, ReplicatedCluster, whyNoReplicatedCluster } from './helpers/replicated-cluster.ts';

const why = whyNoReplicatedCluster();
if (why) {
  t.plan(0, `skipped: ${why}`);
} else {
  t.test('a failover under load loses nothing acknowledged', failoverTest);
}

async function failoverTest(t: Test): Promise<void> {
  const firstPort = Number(process.env.BILLING_TEST_PORT_BASE ?? 25420);
  const cluster = new ReplicatedCluster((await freePortsFrom(firstPort, 2)) as [number, number]);
  const workers: CliProcess[] = [];
  const pools: pg.Pool[] = [];
  t.teardown(async () => {
    // FAILOVER_LOG_DIR=dir keeps the workers' logs (JSON lines) for a look after the run.
    const logDir = process.env.FAILOVER_LOG_DIR;
    if (logDir) workers.forEach((worker, i) => writeFileSync(path.join(logDir, `worker-${i + 1}.log`), worker.output));
    for (const worker of workers) await worker.stop('SIGKILL');
    for (const pool of pools) await pool.end().catch(() => {});
    await cluster.stop();
  });
  await cluster.start();
  const url = cluster.url();
  await migrate({ connectionString: url });

  const pool = (connectionString: string) => {
    const created = createPool({ connectionString, max: 4, applicationName: 'failover-test' });
    pools.push(created);
    return created;
  };
  const producerPool = pool(url);
  const submit = (type: string, payload: object) =>
    producerPool.query('select billing.submit($1, $2::json)', [type, JSON.stringify(payload)]);

  const accounts = Array.from({ length: 8 }, (_, i) => `f-${i}`);
  for (const account of accounts) await submit('open_account', { id: `open-${account}`, account });

  for (const name of ['w1', 'w2']) {
    workers.push(
      new CliProcess(['worker'], {
        DATABASE_URL: url,
        BILLING_HTTP_PORT: '0',
        BILLING_CONCURRENCY: '20',
        BILLING_RECOVERY_INTERVAL_MS: '500',
        WORKER_NAME: name,
      }),
    );
  }
  for (const worker of workers) await worker.waitFor(/"msg":"worker started"/);

  // The producer: commands with ids, each sent until its enqueue commits (at least once, as an
  // application does when a commit's outcome is unknown). Acknowledged = billing.submit returned.
  const acknowledged = new Set<string>();
  let inFlight = 0;
  let producing = true;
  let sent = 0;
  const producer = async (lane: number) => {
    for (let n = 0; producing; n++) {
      const id = `c-${lane}-${n}`;
      const payload = { id, account: accounts[(lane + n) % accounts.length], amount: '3' };
      sent += 1;
      for (;;) {
        inFlight += 1;
        try {
          await submit('credit', payload);
          acknowledged.add(id);
          break;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 50));
        } finally {
          inFlight -= 1;
        }
      }
    }
  };
  const lanes = [0, 1, 2, 3].map(producer);

  const primaryPool = pool(cluster.primary.url());
  const newPrimaryPool = pool(cluster.standby.url());
  const resultCount = async (on: pg.Pool) =>
    Number((await on.query<{ n: string }>('select count(*)::text as n from billing.operations')).rows[0]!.n);
  await until('300 results on the primary', async () => ((await resultCount(primaryPool)) >= 300 ? true : undefined));

  const replication = await primaryPool.query<{ sync_state: string }>('select sync_state from pg_stat_replication');
  t.same(replication.rows, [{ sync_state: 'sync' }], 'the standby is synchronous');
  // Read before the kill: these results were visible on the primary, so a client could have been told.
  const before = (
    await primaryPool.query<{ id: string; seq: string; code: string; balances: unknown }>(
      'select id, seq::text, code, balances from billing.operations',
    )
  ).rows;
  const enqueuesInFlight = inFlight;
  const waitingForResult = [...acknowledged].filter((id) => !before.some((row) => row.id === id)).length;
  cluster.killPrimary();
  await primaryPool.end().catch(() => {});
  const promotedAt = Date.now();
  await cluster.promoteStandby();
  const countAtPromotion = await resultCount(newPrimaryPool);
  await until('a new result on the new primary', async () =>
    (await resultCount(newPrimaryPool)) > countAtPromotion ? true : undefined,
  );
  const backAfterMs = Date.now() - promotedAt;
  t.comment(
    `at the kill: ${enqueuesInFlight} enqueues in flight, ${waitingForResult} acknowledged commands without a result yet; results flowed again ${backAfterMs} ms after the promotion`,
  );
  t.ok(backAfterMs < 10_000, `results flow again within 10 s of the promotion (${backAfterMs} ms)`);

  const countAfter = await resultCount(newPrimaryPool);
  await until('200 more results', async () =>
    (await resultCount(newPrimaryPool)) >= countAfter + 200 ? true : undefined,
  );
  producing = false;
  await Promise.all(lanes);
  t.ok(sent > 0 && acknowledged.size === sent, 'every command sent was acknowledged in the end');

  const resultsFor = async () =>
    new Map(
      (
        await newPrimaryPool.query<{ id: string; seq: string; code: string; balances: unknown }>(
          'select id, seq::text, code, balances from billing.operations',
        )
      ).rows.map((row) => [row.id, row]),
    );
  const after = await until('a result for every acknowledged command', async () => {
    const results = await resultsFor();
    return [...acknowledged].every((id) => results.has(id)) ? results : undefined;
  });
  const lost = before.filter((row) => {
    const now = after.get(row.id);
    return (
      !now ||
      now.seq !== row.seq ||
      now.code !== row.code ||
      JSON.stringify(now.balances) !== JSON.stringify(row.balances)
    );
  });
  t.same(lost, [], `every one of the ${before.length} results read before the kill is on the new primary, unchanged`);
  t.equal(
    [...acknowledged].filter((id) => !after.has(id)).length,
    0,
    `each of the ${acknowledged.size} acknowledged credits has its result (ids are the primary key: exactly one)`,
  );
  const leftLocked = await newPrimaryPool.query(
    "select 1 from graphile_worker.jobs where task_identifier like 'billing/%' and locked_at is not null",
  );
  t.equal(leftLocked.rowCount, 0, 'no billing job is left locked (the dead primary’s locks were reaped)');

  const verify = await runCli(['verify'], { DATABASE_URL: url });
  t.equal(verify.code, 0, `billing verify passes on the new primary\n${verify.stdout}${verify.stderr}`);

  for (const worker of workers) {
    t.ok(worker.running, 'the worker process ran through the failover');
    t.notMatch(worker.output, /cannot execute LISTEN during recovery/, 'no LISTEN on a standby');
  }
}

/** Polls until `probe` returns a value: a state decides when to go on, never a sleep. */
async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`no ${what} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
