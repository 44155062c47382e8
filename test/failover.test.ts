// A real failover (SPEC guarantee 9): a primary and a synchronous standby of their own, two
// `billing worker` processes and a producer on the two-host URL, the primary SIGKILLed (every server
// process) under load, the standby promoted. Then: every result read before the kill is on the new
// primary, every acknowledged enqueue has exactly one result, `billing verify` passes, and results
// flow again within 10 s of the promotion (measured from the first new result, not slept for).
// Also: `billing migrate`, a worker, the client and `billing verify` on a URL whose first host is the
// standby (before the kill); a worker whose URL lists only the standby waits (not ready, one line) and starts work
// once it is promoted; the workers' metrics and /readyz name the new primary.
// Skipped, with the reason, where PostgreSQL's server binaries are not installed.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import t, { type Test } from 'tap';
import { createBillingClient } from '../src/client/index.ts';
import { createPool } from '../src/db/pool.ts';
import { CliProcess, runCli } from './helpers/cli.ts';
import { freePortsFrom, ReplicatedCluster, whyNoReplicatedCluster } from '../chaos/replicated-cluster.ts';
import { waitFor } from './helpers/wait.ts';

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
  const startedAt = Date.now();
  const phases: string[] = [];
  const phase = (name: string) => phases.push(`${name} ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
  await cluster.start();
  phase('cluster up');
  const url = cluster.url();
  const standbyFirst = cluster.url('postgres', [cluster.standby, cluster.primary]);
  const standbyOnly = cluster.url('postgres', [cluster.standby]);
  const migrated = await runCli(['migrate'], { DATABASE_URL: standbyFirst });
  t.equal(migrated.code, 0, `billing migrate on a URL whose first host is the standby\n${migrated.stderr}`);

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

  // The second worker's URL names the standby first; the third's names only the standby.
  for (const workerUrl of [url, standbyFirst, standbyOnly]) {
    workers.push(
      new CliProcess(['worker'], {
        DATABASE_URL: workerUrl,
        BILLING_HTTP_PORT: '0',
        BILLING_CONCURRENCY: '20',
        BILLING_RECOVERY_INTERVAL_MS: '500',
      }),
    );
  }
  const httpPorts: number[] = [];
  for (const worker of workers)
    httpPorts.push(Number((await worker.waitFor(/"http_port":(\d+)[^\n]*"msg":"worker started"/))[1]));
  const get = async (worker: number, route: string) => {
    const response = await fetch(`http://127.0.0.1:${httpPorts[worker]}${route}`);
    return { status: response.status, body: await response.text() };
  };
  phase('workers started');
  const waiting = workers[2]!;
  await waiting.waitFor(/"msg":"no primary PostgreSQL in DATABASE_URL yet: the worker waits/);
  t.match(await get(2, '/readyz'), { status: 503, body: /^not ready/ }, 'a worker with only a standby is not ready');
  t.match(await get(1, '/readyz'), { status: 200, body: `ready: 127.0.0.1:${cluster.primary.port}\n` });

  const client = createBillingClient({ connectionString: standbyFirst, timeoutMs: 60_000 });
  t.teardown(() => client.close());
  t.match(
    await client.credit({ id: 'client-first', account: accounts[0]!, amount: 1n }),
    { status: 'applied' },
    'the client on a URL whose first host is the standby',
  );
  const verifyStandbyFirst = await runCli(['verify'], { DATABASE_URL: standbyFirst });
  t.equal(
    verifyStandbyFirst.code,
    0,
    `billing verify on a URL whose first host is the standby\n${verifyStandbyFirst.stdout}${verifyStandbyFirst.stderr}`,
  );
  t.match(
    verifyStandbyFirst.stdout,
    `on 127.0.0.1:${cluster.primary.port} (the primary)`,
    'billing verify went on to the primary',
  );

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
  // One more lane waits for each result through the client (LISTEN, catch-up read): what it was
  // told must be on the new primary as it was told. A call cut by the failover is sent again (same
  // id: the same result comes back).
  const told = new Map<string, { seq: bigint; code: string }>();
  const clientLane = async () => {
    for (let n = 0; producing; n++) {
      const id = `told-${n}`;
      sent += 1;
      for (;;) {
        try {
          const result = await client.credit({ id, account: accounts[n % accounts.length]!, amount: 2n });
          if (result.status === 'rejected' && result.code === 'id_conflict') throw new Error('id conflict');
          told.set(id, { seq: (result as { seq: bigint }).seq, code: result.code });
          acknowledged.add(id);
          break;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    }
  };
  const lanes = [...[0, 1, 2, 3].map(producer), clientLane()];

  const primaryPool = pool(cluster.primary.url());
  const newPrimaryPool = pool(cluster.standby.url());
  const resultCount = async (on: pg.Pool) =>
    Number((await on.query<{ n: string }>('select count(*)::text as n from billing.operations')).rows[0]!.n);
  await waitFor(
    '150 results on the primary',
    async () => ((await resultCount(primaryPool)) >= 150 ? true : undefined),
    60_000,
    { throughErrors: true },
  );

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
  phase('kill');
  cluster.killPrimary();
  await primaryPool.end().catch(() => {});
  const promotedAt = Date.now();
  await cluster.promoteStandby();
  const countAtPromotion = await resultCount(newPrimaryPool);
  await waitFor(
    'a new result on the new primary',
    async () => ((await resultCount(newPrimaryPool)) > countAtPromotion ? true : undefined),
    60_000,
    { throughErrors: true },
  );
  const backAfterMs = Date.now() - promotedAt;
  phase('results again');
  t.comment(
    `at the kill: ${enqueuesInFlight} enqueues in flight, ${waitingForResult} acknowledged commands without a result yet; results flowed again ${backAfterMs} ms after the promotion`,
  );
  t.ok(backAfterMs < 10_000, `results flow again within 10 s of the promotion (${backAfterMs} ms)`);

  await waiting.waitFor(/"msg":"back at work: a fresh queue runner takes jobs"/);
  t.equal(
    (waiting.output.match(/no primary PostgreSQL in DATABASE_URL yet/g) ?? []).length,
    1,
    'the waiting worker said so once',
  );
  for (const worker of [0, 1]) {
    const metrics = (await get(worker, '/metrics')).body;
    t.match(metrics, `billing_database_host{host="127.0.0.1:${cluster.standby.port}"} 1`, 'metrics: the new primary');
    t.match(metrics, /^billing_database_host_changes_total 1$/m, 'metrics: one failover seen');
  }
  t.match(await get(2, '/readyz'), { status: 200, body: `ready: 127.0.0.1:${cluster.standby.port}\n` });

  const countAfter = await resultCount(newPrimaryPool);
  await waitFor(
    '100 more results',
    async () => ((await resultCount(newPrimaryPool)) >= countAfter + 100 ? true : undefined),
    60_000,
    { throughErrors: true },
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
  const after = await waitFor(
    'a result for every acknowledged command',
    async () => {
      const results = await resultsFor();
      return [...acknowledged].every((id) => results.has(id)) ? results : undefined;
    },
    60_000,
    { throughErrors: true },
  );
  const toldThenLost = [...told].filter(([id, result]) => {
    const now = after.get(id);
    return !now || BigInt(now.seq) !== result.seq || now.code !== result.code;
  });
  t.same(toldThenLost, [], `each of the ${told.size} results the client was told of is on the new primary as told`);
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
  // Jobs the dead primary had locked stay locked until the reapers hand them back: the queue drains
  // only if they did (a live worker may still hold duplicates' jobs for a moment: wait, then check).
  const billingJobsLeft = async () =>
    Number(
      (
        await newPrimaryPool.query<{ n: string }>(
          "select count(*)::text as n from graphile_worker.jobs where task_identifier like 'billing/%'",
        )
      ).rows[0]!.n,
    );
  await waitFor('the queue drained', async () => ((await billingJobsLeft()) === 0 ? true : undefined), 60_000, {
    throughErrors: true,
  }).catch(() => {});
  t.equal(await billingJobsLeft(), 0, 'the queue drains: the dead primary’s locked jobs were reaped and run');

  phase('drained');
  const verify = await runCli(['verify'], { DATABASE_URL: url });
  t.equal(verify.code, 0, `billing verify passes on the new primary\n${verify.stdout}${verify.stderr}`);
  t.match(
    verify.stdout,
    `on 127.0.0.1:${cluster.standby.port} (the primary)`,
    'billing verify names the server it read',
  );

  phase('verified');
  t.comment(`timeline: ${phases.join(', ')}`);
  for (const worker of workers) {
    t.ok(worker.running, 'the worker process ran through the failover');
    t.notMatch(worker.output, /cannot execute LISTEN during recovery/, 'no LISTEN on a standby');
  }
}
