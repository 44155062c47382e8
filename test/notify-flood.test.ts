// A NOTIFY flood (issue 24, item 4): any login may send `jobs:insert` (graphile-worker's wake-up)
// and `billing_results` (ours). Two connections flood both channels while a caller sends commands
// one at a time; the flood must cost a bounded number of extra job fetches (the worker's
// billing_queue_fetches_total) and result reads (the caller's reads of billing.operations), not
// one per notification. A scratch PostgreSQL 18 cluster, so that the flood slows no one else.
// The bounds follow from the spacing (at most one wake-up, and one read, per spacing) and the
// flood's own length; no time is asserted.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import t from 'tap';
import { PendingResults } from '../src/client/pending.ts';
import { ResultListener } from '../src/client/listener.ts';
import { parseCommand } from '../src/commands/parse.ts';
import { createPool } from '../src/db/pool.ts';
import { migrate } from '../src/db/migrate.ts';
import { PostgresCluster } from '../src/embedded/postgres-cluster.ts';
import { CliProcess } from './helpers/cli.ts';
// A free port below the ephemeral range: another suite may run beside this one.
import { freePortsFrom } from '../chaos/replicated-cluster.ts';

// Wider than the defaults (10 ms), so that the bounds below are far from what an unspaced flood costs.
const wakeSpacingMs = 100;
const readSpacingMs = 100;
const commands = 20;

const dir = mkdtempSync(path.join(tmpdir(), 'pg-billing-notify-flood-'));
chmodSync(dir, 0o777);
const cluster = new PostgresCluster({
  dataDir: path.join(dir, 'pgdata'),
  port: (await freePortsFrom(25350, 1))[0]!,
  initdbSync: false,
});
let worker: CliProcess | undefined;
const closers: (() => Promise<unknown>)[] = [];
let flooding = false;
t.teardown(async () => {
  flooding = false;
  try {
    await worker?.stop('SIGKILL');
    for (const close of closers) await close().catch(() => {});
  } finally {
    await cluster.stop('immediate').catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
});
await cluster.start();
const url = cluster.databaseUrl('postgres');
await migrate({ connectionString: url });

t.test('a flood of jobs:insert and billing_results costs a bounded number of fetches and reads', async (t) => {
  worker = new CliProcess(['worker'], {
    DATABASE_URL: url,
    BILLING_HTTP_PORT: '0',
    BILLING_CONCURRENCY: '10',
    BILLING_WAKE_SPACING_MS: String(wakeSpacingMs),
  });
  const httpPort = Number((await worker.waitFor(/"http_port":(\d+)[^\n]*"msg":"worker started"/))[1]);
  const metric = async (pattern: RegExp) =>
    Number((await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()).match(pattern)?.[1] ?? NaN);
  const fetches = () => metric(/^billing_queue_fetches_total (\d+)$/m);

  // The caller: the client's own waiting machinery (listener + pending results) on a pool whose
  // queries are counted.
  const pool = createPool({ connectionString: url, max: 2 });
  let reads = 0;
  const query = pool.query.bind(pool) as (...args: unknown[]) => Promise<unknown>;
  (pool as unknown as { query: (...args: unknown[]) => Promise<unknown> }).query = (...args) => {
    if (typeof args[0] === 'string' && args[0].includes('from billing.operations')) reads += 1;
    return query(...args);
  };
  const listener = new ResultListener({
    connectionString: url,
    channel: 'billing_results',
    applicationName: 'flood-test',
  });
  const pending = new PendingResults(pool, listener, { readSpacingMs });
  closers.push(
    () => listener.close(),
    () => pool.end(),
  );
  let sent = 0;
  await pool.query(`select billing.submit('open_account', '{"id": "open-a", "account": "a"}')`);

  /** Sends `commands` credits one at a time, each after the previous one's result. */
  async function oneAtATime(label: string): Promise<{ fetches: number; reads: number; ms: number }> {
    const fetchesBefore = await fetches();
    const readsBefore = reads;
    const started = performance.now();
    for (let i = 0; i < commands; i++) {
      const payload = { id: `${label}-${i}`, account: 'a', amount: '1' };
      const { fingerprint } = parseCommand({ task: 'credit', payload, defaultId: '', defaultCurrency: 'USD' });
      const call = pending.add(payload.id, 'credit', fingerprint);
      const { rows } = await pool.query<{ job_id: bigint }>(`select billing.submit('credit', $1::json) as job_id`, [
        JSON.stringify(payload),
      ]);
      call.enqueued(rows[0]!.job_id, 60_000);
      t.equal((await call.promise).status, 'applied');
      if (process.env.FLOOD_DEBUG) console.error(label, i, (performance.now() - started).toFixed(0), reads, sent);
    }
    const ms = performance.now() - started;
    return { fetches: (await fetches()) - fetchesBefore, reads: reads - readsBefore, ms };
  }

  const quiet = await oneAtATime('quiet');

  flooding = true;
  const flooders = await Promise.all(
    [0, 1].map(async () => {
      const session = new pg.Client({ connectionString: url });
      await session.connect();
      closers.push(() => session.end());
      return {
        loop: (async () => {
          while (flooding) {
            await session.query(
              `select pg_notify('jobs:insert', '{"r":0.5,"count":1000000}'), pg_notify('billing_results', '{"seq":"1","count":1}')`,
            );
            sent += 1;
          }
        })(),
      };
    }),
  );
  // The flood is under way before the caller starts.
  while (sent < 200) await new Promise((resolve) => setTimeout(resolve, 10));
  const flood = await oneAtATime('flood');
  flooding = false;
  await Promise.all(flooders.map((f) => f.loop));
  const wakeups = await metric(/^billing_queue_wakeups_total\{outcome="coalesced"\} (\d+)$/m);
  t.comment(
    `quiet: ${quiet.fetches} fetches, ${quiet.reads} reads in ${quiet.ms.toFixed(0)} ms; ` +
      `flood (${sent} x 2 notifications): ${flood.fetches} fetches, ${flood.reads} reads in ${flood.ms.toFixed(0)} ms; ${wakeups} wake-ups coalesced`,
  );
  t.ok(wakeups > 0, 'jobs:insert wake-ups were coalesced');
  // Per spacing at most one wake-up passes, and each costs at most one fetch (graphile-worker
  // folds wake-ups during a fetch into one more); its poll (1 s) comes on top. Twice that, for slack.
  const fetchBound = 2 * (Math.ceil(flood.ms / wakeSpacingMs) + 1 + Math.ceil(flood.ms / 1_000) + 1);
  t.ok(flood.fetches <= fetchBound, `job fetches during the flood: ${flood.fetches} <= ${fetchBound}`);
  // Every read of the caller starts at least readSpacingMs after the one before.
  const readBound = Math.ceil(flood.ms / readSpacingMs) + 1;
  t.ok(flood.reads <= readBound, `result reads during the flood: ${flood.reads} <= ${readBound}`);
  // Unspaced, every flood transaction that finds the fetcher or the reader idle costs one more.
  t.ok(sent > Math.max(fetchBound, readBound), `the flood (${sent} transactions) outnumbers both bounds`);
});
