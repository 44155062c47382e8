/**
 * `billing bench`: one run on one fresh database (created here and dropped at the end), printing
 * the SPEC's performance table and checking the ledger afterwards. `node bench/bench.ts --help`.
 */
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { resolveServerUrl } from '../src/db/connection.ts';
import { createKysely } from '../src/db/kysely.ts';
import { createPool } from '../src/db/pool.ts';
import { verifyLedger, type VerifyReport } from '../src/ledger/verify.ts';
import { createBenchDatabase, databaseSeconds, highestSeq, resultsAfter, type BenchDatabase } from './database.ts';
import { latencyAt } from './latency.ts';
import { rawCeiling } from './raw-ceiling.ts';
import { formatNumber, table, type Row, type Target } from './report.ts';
import { drain, endToEnd, queueCeiling, type Phase } from './throughput.ts';
import { deployedNodeOptions, startWorkers } from './workers.ts';
import { enqueueTransfers, hot, uniform } from './workload.ts';

const help = `Usage: node bench/bench.ts [options]   (or: billing bench [options])

Measures pg-billing on a fresh database of its own (created, then dropped) and prints:
raw ceiling, queue ceiling, end to end (uniform and hot account), latency at half load,
worker RSS, the SPEC targets with pass/fail, and the ledger check. Exits 1 if verify fails
or a command is lost; targets that are missed are reported, not an error.

Options:
  --seconds <n>          measuring window of each throughput run (default 10)
  --warmup <n>           seconds before each window (default 2)
  --accounts <n>         funded accounts (default 10000; at least 3)
  --workers <n>          worker processes (default 2)
  --raw-connections <n>  connections of the raw ceiling (default 8)
  --chunk <n>            jobs per add_jobs call of the load generator (default 10000)
  --database-url <url>   server to create the bench database on (default DATABASE_URL, else
                         postgres://postgres@127.0.0.1:5432/postgres)
  --json                 print one JSON document instead of the table
  --scaling              the cost table instead: commands/s with 1, 2 and 4 worker processes,
                         and with 1,000 and 1,000,000 accounts
  --backlog <n>          with --scaling, also measure with <n> jobs queued before the workers
                         start (e.g. 1000000: takes minutes)
  --worker-node-options <flags>
                         NODE_OPTIONS for the worker processes only (default: the Dockerfile's,
                         "${deployedNodeOptions}"; "" for Node's own limits)
  --keep-database        do not drop the bench database (its name is printed)
  -h, --help             this text

Worker settings come from the environment as for the service (BILLING_BATCH_SIZE,
BILLING_CONCURRENCY, LOG_LEVEL, ...).`;

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    accounts: { type: 'string', default: '10000' },
    workers: { type: 'string', default: '2' },
    'raw-connections': { type: 'string', default: '8' },
    chunk: { type: 'string', default: '10000' },
    'database-url': { type: 'string' },
    json: { type: 'boolean', default: false },
    scaling: { type: 'boolean', default: false },
    backlog: { type: 'string', default: '0' },
    'keep-database': { type: 'boolean', default: false },
    'worker-node-options': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});

if (values.help) {
  process.stdout.write(`${help}\n`);
  process.exit(0);
}

const positive = (name: string, raw: string, min = 1): number => {
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) {
    process.stderr.write(`--${name} must be a number of at least ${min}, got "${raw}"\n`);
    process.exit(2);
  }
  return n;
};
const options = {
  seconds: positive('seconds', values.seconds, 0.5),
  warmup: positive('warmup', values.warmup, 0),
  accounts: Math.floor(positive('accounts', values.accounts, 3)),
  workers: Math.floor(positive('workers', values.workers)),
  rawConnections: Math.floor(positive('raw-connections', values['raw-connections'])),
  chunk: Math.floor(positive('chunk', values.chunk)),
  backlog: Math.floor(positive('backlog', values.backlog, 0)),
  workerNodeOptions: values['worker-node-options'] ?? null,
};
const phase: Phase = { seconds: options.seconds, warmupSeconds: options.warmup, chunk: options.chunk };
const workerEnv: Record<string, string> = { NODE_OPTIONS: values['worker-node-options'] ?? deployedNodeOptions };
const log = (message: string) => { if (!values.json) process.stderr.write(`${message}\n`); };
const serverUrl = values['database-url'] ?? (await resolveServerUrl());

interface LedgerCheck {
  ok: boolean;
  lost: number;
  report: VerifyReport;
}

/** verify, plus: every command the bench enqueued has its result and no job is left. */
async function checkLedger(bench: BenchDatabase, enqueued: number): Promise<LedgerCheck> {
  const pool = createPool({ connectionString: bench.url, max: 2 });
  const db = createKysely(pool);
  try {
    const report = await verifyLedger(db);
    const { rows } = await bench.pool.query<{ results: number; jobs: number }>(`
      select (select count(*)::int from billing.operations where id not like 'seed:%') as results,
             (select count(*)::int from graphile_worker._private_jobs) as jobs`);
    const lost = enqueued - rows[0]!.results + rows[0]!.jobs;
    return { ok: report.ok && lost === 0, lost, report };
  } finally {
    await db.destroy();
  }
}

function printCheck(check: LedgerCheck): void {
  if (values.json) return;
  const r = check.report;
  process.stdout.write(`\nverify: ${r.ok ? 'ok' : 'BREACH'} (${r.accounts} accounts, ${r.entries} entries, ${r.operations} results)\n`);
  for (const c of r.checks) {
    process.stdout.write(`  ${c.violations === 0 ? 'ok  ' : c.severity === 'breach' ? 'FAIL' : 'warn'} ${c.name}${c.violations ? `: ${c.violations} (${c.examples.join('; ')})` : ''}\n`);
  }
  process.stdout.write(`  ${check.lost === 0 ? 'ok  ' : 'FAIL'} every enqueued command has its result, no job left${check.lost ? `: ${check.lost} missing` : ''}\n`);
}

async function mainRun(): Promise<boolean> {
  log(`creating the bench database with ${options.accounts} accounts`);
  const bench = await createBenchDatabase(serverUrl, options.accounts, 'run');
  try {
    log(`raw ceiling: ${options.rawConnections} connections, ${options.seconds} s`);
    const raw = await rawCeiling(bench, options.seconds, options.rawConnections);
    // The raw transfers are results like any other: count them as enqueued for the lost check.
    const rawCount = await resultsAfter(bench.pool, 0) - options.accounts;

    log(`queue ceiling: ${options.workers} no-op worker processes`);
    const noop = await startWorkers(bench, options.workers, 'noop', workerEnv);
    const queue = await queueCeiling(bench, phase);
    await noop.stop();

    log(`end to end: ${options.workers} worker processes`);
    const workers = await startWorkers(bench, options.workers, 'real', workerEnv);
    let enqueued = rawCount;
    let uniformRate: number;
    let hotRate: number;
    let latency: Awaited<ReturnType<typeof latencyAt>>;
    let rss: number[];
    try {
      const u = await endToEnd(bench, phase, uniform, 'u:');
      enqueued += u.enqueued;
      uniformRate = u.rate;
      log(`  uniform ${formatNumber(u.rate)}/s; hot account next`);
      const h = await endToEnd(bench, phase, hot, 'h:');
      enqueued += h.enqueued;
      hotRate = h.rate;
      log(`  hot ${formatNumber(h.rate)}/s; latency at ${formatNumber(u.rate / 2)}/s next`);
      latency = await latencyAt(bench, uniformRate / 2, options.seconds, 'l:');
      enqueued += latency.enqueued;
      rss = workers.peakRss();
    } finally {
      await workers.stop();
    }
    const check = await checkLedger(bench, enqueued);

    const peakRss = Math.max(...rss);
    const rows: Row[] = [
      { key: 'raw', label: 'raw ceiling', value: raw, unit: 'transfers/s', note: `no queue, 1 transfer a transaction, ${options.rawConnections} connections` },
      { key: 'queue', label: 'queue ceiling', value: queue.rate, unit: 'jobs/s', note: `no-op jobs, ${options.workers} worker processes, service settings` },
      { key: 'uniform', label: 'end to end, uniform', value: uniformRate, unit: 'commands/s', note: `add_jobs -> committed result, ${options.workers} workers, ${options.accounts} accounts` },
      { key: 'hot', label: 'end to end, hot account', value: hotRate, unit: 'commands/s', note: '90% of transfers touch one account' },
      { key: 'p50', label: 'latency p50', value: latency.p50Ms, unit: 'ms', note: `at ${formatNumber(latency.achievedRate)}/s (asked ${formatNumber(latency.targetRate)}/s${latency.achievedRate < 0.9 * latency.targetRate ? ', enqueue-bound' : ''}), one add_jobs every 10 ms (${latency.calls} calls, lag max ${formatNumber(latency.maxSendLagMs)} ms), ${latency.samples} samples; queue share p50 ${formatNumber(latency.pickupP50Ms)} ms` },
      { key: 'p99', label: 'latency p99', value: latency.p99Ms, unit: 'ms', note: `max ${formatNumber(latency.maxMs)} ms; queue share p99 ${formatNumber(latency.pickupP99Ms)} ms` },
      { key: 'rss', label: 'worker RSS, peak', value: peakRss / 2 ** 20, unit: 'MB', note: `VmHWM per process: ${rss.map((b) => formatNumber(b / 2 ** 20)).join(', ')}` },
    ];
    const targets: Target[] = [
      { key: 'e2e_vs_raw', label: 'end to end / raw ceiling', value: uniformRate / raw, target: '>= 4', pass: uniformRate / raw >= 4 },
      { key: 'hot_vs_uniform', label: 'hot / uniform', value: hotRate / uniformRate, target: '>= 0.9', pass: hotRate / uniformRate >= 0.9 },
      { key: 'p99', label: 'p99 at half load (ms)', value: latency.p99Ms, target: '<= 50', pass: latency.p99Ms <= 50 },
      { key: 'rss', label: 'worker RSS (MB)', value: peakRss / 2 ** 20, target: '<= 150', pass: peakRss <= 150 * 2 ** 20 },
    ];
    if (values.json) {
      process.stdout.write(`${JSON.stringify({
        options, rows, targets, latency,
        verify: { ok: check.ok, ledger_ok: check.report.ok, lost: check.lost, checks: check.report.checks },
      }, null, 2)}\n`);
    } else {
      process.stdout.write(`${table(['figure', 'value', 'unit', 'how'], rows.map((r) => [r.label, formatNumber(r.value), r.unit, r.note]))}\n\n`);
      process.stdout.write(`${table(['SPEC target', 'measured', 'target', 'result'], targets.map((t) => [t.label, formatNumber(t.value), t.target, t.pass ? 'pass' : 'FAIL']))}\n`);
      printCheck(check);
    }
    return check.ok;
  } finally {
    if (values['keep-database']) log(`kept database ${bench.name}`);
    else await bench.drop();
  }
}

interface ScalingRow {
  label: string;
  workers: number;
  accounts: number;
  backlog: number;
  rate: number;
  verifyOk: boolean;
}

/** One end-to-end uniform figure on a database of its own. */
async function scalingRun(label: string, workers: number, accounts: number, backlog: number): Promise<ScalingRow> {
  log(`scaling: ${label}`);
  const bench = await createBenchDatabase(serverUrl, accounts, 'scale');
  try {
    let rate: number;
    let enqueued = 0;
    if (backlog > 0) {
      const chunk = 50_000;
      for (let first = 0; first < backlog; first += chunk) {
        await enqueueTransfers(bench.pool, 'b:', first, Math.min(chunk, backlog - first), accounts, uniform);
      }
      enqueued = backlog;
      log(`  ${backlog} jobs queued; starting workers`);
      const fleet = await startWorkers(bench, workers, 'real', workerEnv);
      try {
        await sleep(options.warmup * 1000);
        const t0 = await databaseSeconds(bench.pool);
        const n0 = await highestSeq(bench.pool);
        await sleep(options.seconds * 1000);
        const t1 = await databaseSeconds(bench.pool);
        const done = await resultsAfter(bench.pool, n0);
        rate = done / (t1 - t0);
        await drain(bench, 0, accounts + backlog, 3_600_000);
      } finally {
        await fleet.stop();
      }
    } else {
      const fleet = await startWorkers(bench, workers, 'real', workerEnv);
      try {
        const measured = await endToEnd(bench, phase, uniform, 'u:');
        rate = measured.rate;
        enqueued = measured.enqueued;
      } finally {
        await fleet.stop();
      }
    }
    const check = await checkLedger(bench, enqueued);
    if (!check.ok) printCheck(check);
    log(`  ${formatNumber(rate)} commands/s, verify ${check.ok ? 'ok' : 'FAILED'}`);
    return { label, workers, accounts, backlog, rate, verifyOk: check.ok };
  } finally {
    await bench.drop();
  }
}

async function scaling(): Promise<boolean> {
  const rows: ScalingRow[] = [];
  for (const workers of [1, 2, 4]) rows.push(await scalingRun(`${workers} worker process${workers > 1 ? 'es' : ''}`, workers, options.accounts, 0));
  for (const accounts of [1_000, 1_000_000]) rows.push(await scalingRun(`${accounts.toLocaleString('en-US')} accounts`, options.workers, accounts, 0));
  if (options.backlog > 0) rows.push(await scalingRun(`${options.backlog.toLocaleString('en-US')} jobs queued ahead`, options.workers, options.accounts, options.backlog));
  const ok = rows.every((r) => r.verifyOk);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ options, scaling: rows, verify: { ok } }, null, 2)}\n`);
  } else {
    process.stdout.write(`${table(['scenario', 'workers', 'accounts', 'queued ahead', 'commands/s', 'verify'],
      rows.map((r) => [r.label, String(r.workers), r.accounts.toLocaleString('en-US'), r.backlog.toLocaleString('en-US'), formatNumber(r.rate), r.verifyOk ? 'ok' : 'FAIL']))}\n`);
  }
  return ok;
}

try {
  const ok = values.scaling ? await scaling() : await mainRun();
  process.exitCode = ok ? 0 : 1;
} catch (error) {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
}
