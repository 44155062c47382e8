/**
 * `npm run bench`: one run on one fresh database (created here and dropped at the end), printing
 * the performance table (docs/performance.md) and checking the ledger afterwards. `node bench/bench.ts --help`.
 */
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../src/config.ts';
import { findDatabase } from '../src/db/find-database.ts';
import { createKysely } from '../src/db/kysely.ts';
import { createPool } from '../src/db/pool.ts';
import { verifyLedger, type VerifyReport } from '../src/ledger/verify.ts';
import { createBenchDatabase, databaseSeconds, highestSeq, resultsAfter, type BenchDatabase } from './database.ts';
import { latencyAt } from './latency.ts';
import { wakeCost } from './wake-cost.ts';
import { loadavg, availableParallelism } from 'node:os';
import { anchorConnections, loadAnchor, runAnchor, setUpAnchor } from './anchor.ts';
import { applyPathOneByOne } from './apply-path.ts';
import { costProbe } from './costs.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { latencyChartSvg } from './chart.ts';
import {
  buildReport,
  costHeaders,
  curveHeaders,
  curveLoads,
  formatNumber,
  table,
  type Measurements,
} from './report.ts';
import { burstDrain, drain, endToEnd, queueCeiling, type Phase } from './throughput.ts';
import { deployedMallocArenaMax, deployedNodeOptions, startWorkers } from './workers.ts';
import { enqueueTransfers, hot, paymentWithFee, uniform } from './workload.ts';

const phaseNames = ['anchor', 'apply', 'queue', 'uniform', 'hot', 'transaction', 'burst', 'batch', 'latency'] as const;
type PhaseName = (typeof phaseNames)[number];

const help = `Usage: node bench/bench.ts [options]   (or: npm run bench -- [options])

Measures pg-billing on a fresh database of its own (created, then dropped) and prints one table
with every figure also as a ratio to the anchor (SPEC 7): plain-SQL transfers exactly as
bench/anchor/plain-transfer.sql writes them, 8 connections, 10,000 accounts, one transaction per
transfer, run in the same database before and after the worker phases (the ratio uses their mean).
Then: the SPEC targets with pass/MISSED, where the CPU goes per command, and the ledger check.

Phases (--phases), in this order: anchor, apply (the service's own apply path, one transfer per
transaction, no queue), queue (no-op jobs: the queue ceiling), uniform and hot (end to end, one
command per job, add_jobs), transaction (the same with a payment and its fee as one two-leg
transaction command per job), burst (--burst transfers enqueued by add_jobs in calls of --chunk
while the workers run, timed from the first enqueue to the last result), latency (the curve: at
10%, 25%, 50% and 75% of the uniform rate, enqueue to the result seen by a LISTENing reader that
reads by cursor, each timed after 1 s at its rate; the targets use 50%), batch (a producer sends batch jobs of --batch-job-size
commands, to workers of their own; their RSS is shown apart: the RSS target is for one command
per job), anchor again.

Exit codes: 0 done (targets missed are reported); 1 verify failed, a command lost, or (with
--check) a SPEC target missed or not measured; 2 bad options.

Options:
  --check                exit 1 when a SPEC target is missed (the table says which)
  --seconds <n>          measuring window of each phase (default 10)
  --warmup <n>           seconds before each throughput window (default 2)
  --accounts <n>         funded accounts of the service (default 10000; at least 3; the anchor
                         always has its own 10,000)
  --workers <n>          worker processes (default 2)
  --raw-connections <n>  connections of the apply-path phase (default 8)
  --batch-job-size <n>   commands per batch job in the batch phase (default 100)
  --batch-concurrency <n>
                         BILLING_CONCURRENCY of the batch phase's workers (default 4, i.e. 400
                         commands in flight per worker; the service's 200 would be 20,000)
  --chunk <n>            commands per add_jobs call of the load generator (default 10000)
  --burst <n>            transfers of the burst phase (default 6 x --chunk: 60,000 in calls
                         of 10,000)
  --latency-rate <n>     the latency phase's rate in commands/s instead of half the uniform rate
                         (for latency against rate; the latency targets then count as not measured)
  --phases <list>        comma-separated subset of: ${phaseNames.join(',')} (default: all)
  --database-url <url>   server to create the bench database on (default DATABASE_URL, else
                         the embedded server that \`npm start\` runs from this folder)
  --json                 print one JSON document instead of the tables
  --out <dir>            where the report (report.txt, or report.json with --json) and the
                         latency chart (latency.svg) are written (default bench/out)
  --scaling              the cost table instead: commands/s with 1, 2 and 4 worker processes,
                         and with 1,000 and 1,000,000 accounts
  --backlog <n>          with --scaling, also measure with <n> jobs queued before the workers
                         start (e.g. 1000000: takes minutes)
  --worker-node-options=<flags>
                         NODE_OPTIONS for the worker processes only (default: the Dockerfile's,
                         "${deployedNodeOptions}"; "" for Node's own limits)
  --keep-database        do not drop the bench database (its name is printed)
  -h, --help             this text

Worker settings come from the environment as for the service (BILLING_BATCH_SIZE,
BILLING_CONCURRENCY, LOG_LEVEL, ...); the ones set are printed with the table.
The machine's load average is printed before and after: figures from a busy machine are low,
the ratios within one run much less so.`;

const { values } = (() => {
  try {
    return parseArgs({
      options: {
        check: { type: 'boolean', default: false },
        seconds: { type: 'string', default: '10' },
        warmup: { type: 'string', default: '2' },
        accounts: { type: 'string', default: '10000' },
        workers: { type: 'string', default: '2' },
        'raw-connections': { type: 'string', default: '8' },
        'batch-job-size': { type: 'string', default: '100' },
        'batch-concurrency': { type: 'string', default: '4' },
        chunk: { type: 'string', default: '10000' },
        burst: { type: 'string' },
        out: { type: 'string', default: fileURLToPath(new URL('./out', import.meta.url)) },
        'latency-rate': { type: 'string', default: '0' },
        phases: { type: 'string', default: phaseNames.join(',') },
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
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n(see --help)\n`);
    process.exit(2);
  }
})();

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
const phases = new Set(
  values.phases
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean),
);
for (const p of phases) {
  if (!(phaseNames as readonly string[]).includes(p)) {
    process.stderr.write(`--phases: unknown phase "${p}" (known: ${phaseNames.join(', ')})\n`);
    process.exit(2);
  }
}
const runs = (p: PhaseName) => phases.has(p);
const options = {
  seconds: positive('seconds', values.seconds, 0.5),
  warmup: positive('warmup', values.warmup, 0),
  accounts: Math.floor(positive('accounts', values.accounts, 3)),
  workers: Math.floor(positive('workers', values.workers)),
  rawConnections: Math.floor(positive('raw-connections', values['raw-connections'])),
  batchJobSize: Math.floor(positive('batch-job-size', values['batch-job-size'], 2)),
  batchConcurrency: Math.floor(positive('batch-concurrency', values['batch-concurrency'])),
  chunk: Math.floor(positive('chunk', values.chunk)),
  burst: Math.floor(positive('burst', values.burst ?? String(6 * Number(values.chunk)))),
  backlog: Math.floor(positive('backlog', values.backlog, 0)),
  latencyRate: positive('latency-rate', values['latency-rate'], 0),
  phases: [...phases],
  out: resolve(values.out),
  workerNodeOptions: values['worker-node-options'] ?? null,
};
const phase: Phase = { seconds: options.seconds, warmupSeconds: options.warmup, chunk: options.chunk };
const workerEnv: Record<string, string> = {
  NODE_OPTIONS: values['worker-node-options'] ?? deployedNodeOptions,
  MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? deployedMallocArenaMax,
};
const log = (message: string) => {
  if (!values.json) process.stderr.write(`${message}\n`);
};
// The same rule as every other subcommand: DATABASE_URL, else the embedded server `npm start` runs.
const serverUrl =
  values['database-url'] ??
  (await findDatabase(loadConfig()).then(
    (target) => target.url,
    (error: Error) => {
      console.error(`bench: ${error.message}`);
      process.exit(1);
    },
  ));

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
  if (!values.json) process.stdout.write(checkText(check));
}

function checkText(check: LedgerCheck): string {
  const r = check.report;
  return [
    `\nverify: ${r.ok ? 'ok' : 'BREACH'} (${r.accounts} accounts, ${r.entries} entries, ${r.operations} results)`,
    ...r.checks.map(
      (c) =>
        `  ${c.violations === 0 ? 'ok  ' : c.severity === 'breach' ? 'FAIL' : 'warn'} ${c.name}${c.violations ? `: ${c.violations} (${c.examples.join('; ')})` : ''}`,
    ),
    `  ${check.lost === 0 ? 'ok  ' : 'FAIL'} every enqueued command has its result, no job left${check.lost ? `: ${check.lost} missing` : ''}\n`,
  ].join('\n');
}

/** The machine as the run saw it: figures from a loaded machine are low, so every report says how loaded. */
function machine(): { loadAverage: string; cores: number } {
  return {
    loadAverage: loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
    cores: availableParallelism(),
  };
}

function workerSettings(): string {
  const set = Object.entries(process.env)
    .filter(([k]) => k.startsWith('BILLING_') || k === 'LOG_LEVEL')
    .map(([k, v]) => `${k}=${v}`);
  return set.length ? set.join(' ') : 'defaults';
}

/**
 * Each phase starts from a vacuumed database, so that no phase pays for the one before: a phase
 * leaves up to ~100,000 dead rows (deleted jobs, updated accounts) that every get_jobs of the next
 * phase walked past. Autovacuum would remove them on a stock server within about a minute; on the
 * server these figures come from it is off (the header says which), and they stayed for the whole
 * run. Back to back at the same rate, the latency phase gave p50/p99 97/213 ms right after the
 * uniform phase and 42/151 ms after a vacuum. A phase's own dead rows stay, as they would between
 * two autovacuum visits. The anchor's second run gets the same.
 */
async function settle(bench: BenchDatabase): Promise<void> {
  const started = performance.now();
  await bench.pool.query('vacuum analyze');
  log(`  vacuum analyze: ${formatNumber(performance.now() - started)} ms`);
}

async function mainRun(): Promise<boolean> {
  const before = machine();
  log(
    `load average ${before.loadAverage} on ${before.cores} cores; creating the bench database with ${options.accounts} accounts`,
  );
  const bench = await createBenchDatabase(serverUrl, options.accounts, 'run');
  const { autovacuum } = (await bench.pool.query<{ autovacuum: string }>('show autovacuum')).rows[0]!;
  const wake = await wakeCost(bench.url);
  const m: Measurements = { anchors: [] };
  let enqueued = 0;
  try {
    const anchorScript = loadAnchor();
    if (runs('anchor')) {
      await setUpAnchor(bench, anchorScript);
      log(`anchor (first): ${anchorConnections} connections, ${options.seconds} s`);
      m.anchors.push(await runAnchor(bench, options.seconds, anchorScript));
      log(`  ${formatNumber(m.anchors[0]!.rate)} transfers/s`);
    }
    if (runs('apply')) {
      await settle(bench);
      log(
        `service apply path, one transfer per transaction: ${options.rawConnections} connections, ${options.seconds} s`,
      );
      m.applyPath = await applyPathOneByOne(bench, options.seconds, options.rawConnections);
      // Its transfers are results like any other: count them as enqueued for the lost check.
      enqueued += (await resultsAfter(bench.pool, 0)) - options.accounts;
    }
    if (runs('queue')) {
      await settle(bench);
      log(`queue ceiling: ${options.workers} no-op worker processes`);
      const noop = await startWorkers(bench, options.workers, 'noop', workerEnv);
      try {
        m.queue = (await queueCeiling(bench, phase)).rate;
      } finally {
        await noop.stop();
      }
    }
    if (runs('uniform') || runs('hot') || runs('transaction') || runs('burst') || runs('latency')) {
      log(`end to end: ${options.workers} worker processes`);
      const workers = await startWorkers(bench, options.workers, 'real', workerEnv);
      const probe = () => costProbe(bench, () => workers.pids());
      try {
        if (runs('uniform')) {
          await settle(bench);
          m.uniform = await endToEnd(bench, phase, uniform, 'u:', probe());
          enqueued += m.uniform.enqueued;
          log(`  uniform ${formatNumber(m.uniform.rate)}/s`);
        }
        if (runs('hot')) {
          await settle(bench);
          m.hot = await endToEnd(bench, phase, hot, 'h:', probe());
          enqueued += m.hot.enqueued;
          log(`  hot account ${formatNumber(m.hot.rate)}/s`);
        }
        if (runs('transaction')) {
          await settle(bench);
          m.transaction = await endToEnd(bench, phase, paymentWithFee, 't:', probe());
          enqueued += m.transaction.enqueued;
          log(`  payment with fee ${formatNumber(m.transaction.rate)}/s`);
        }
        if (runs('burst')) {
          await settle(bench);
          log(`  burst of ${options.burst} in add_jobs calls of ${options.chunk}`);
          m.burst = await burstDrain(bench, options.burst, options.chunk, uniform, 'd:', probe());
          enqueued += m.burst.enqueued;
          log(`  burst drained at ${formatNumber(m.burst.rate)}/s (${formatNumber(m.burst.seconds)} s)`);
        }
        if (runs('latency')) {
          // Shares of the measured maximum; without a uniform phase, of 5x the anchor (the target's own rate).
          const maximum = m.uniform ? m.uniform.rate : m.anchors[0] ? 5 * m.anchors[0].rate : 2_000;
          const points = options.latencyRate
            ? [{ load: options.latencyRate / maximum, rate: options.latencyRate }]
            : curveLoads.map((load) => ({ load, rate: load * maximum }));
          m.curve = [];
          for (const { load, rate } of points) {
            await settle(bench);
            log(`  latency at ${formatNumber(rate)}/s`);
            const figures = await latencyAt(bench, rate, options.seconds, `l${Math.round(load * 100)}:`, probe());
            enqueued += figures.enqueued;
            m.curve.push({ load, figures });
            if (options.latencyRate || load === 0.5) m.latency = figures;
            log(`  p50 ${formatNumber(figures.p50Ms)} ms, p99 ${formatNumber(figures.p99Ms)} ms`);
          }
          m.latencyAtHalfLoad = !options.latencyRate;
          if (options.latencyRate) delete m.curve;
        }
        m.rss = workers.peakRss();
      } finally {
        await workers.stop();
      }
    }
    if (runs('batch')) {
      await settle(bench);
      // Workers of their own: graphile-worker counts a batch job as one job, so BILLING_CONCURRENCY
      // batch jobs of 100 put 100x as many commands in flight (bench/LOG.md).
      log(
        `batch jobs of ${options.batchJobSize}: ${options.workers} worker processes with BILLING_CONCURRENCY=${options.batchConcurrency}`,
      );
      const workers = await startWorkers(bench, options.workers, 'real', {
        ...workerEnv,
        BILLING_CONCURRENCY: String(options.batchConcurrency),
      });
      try {
        m.batch = await endToEnd(
          bench,
          phase,
          uniform,
          'b:',
          costProbe(bench, () => workers.pids()),
          options.batchJobSize,
        );
        enqueued += m.batch.enqueued;
        m.batchRss = workers.peakRss();
        log(`  ${formatNumber(m.batch.rate)}/s`);
      } finally {
        await workers.stop();
      }
    }
    if (runs('anchor')) {
      await settle(bench);
      log(`anchor (second): ${anchorConnections} connections, ${options.seconds} s`);
      m.anchors.push(await runAnchor(bench, options.seconds, anchorScript));
      log(`  ${formatNumber(m.anchors[1]!.rate)} transfers/s`);
    }
    const check = await checkLedger(bench, enqueued);
    const after = machine();
    const report = buildReport(m, options);
    const missed = report.targets.filter((t) => !t.pass);
    const heading =
      `pg-billing bench, ${new Date().toISOString()}: ${options.workers} worker processes (${workerSettings()}), ` +
      `${options.accounts} accounts, ${options.seconds} s windows; load average ${before.loadAverage} before, ${after.loadAverage} after, ${before.cores} cores; ` +
      `autovacuum ${autovacuum} (each phase starts from a vacuum); client CPU of one query ${formatNumber(wake.backToBackUs)} us ` +
      `back to back, ${formatNumber(wake.afterIdleUs)} us after 10 ms idle`;
    mkdirSync(options.out, { recursive: true });
    let chart: string | undefined;
    if (m.curve?.length && m.anchors.length) {
      chart = resolve(options.out, 'latency.svg');
      const anchor = report.rows.find((r) => r.key === 'anchor')!;
      const anchorLatency = {
        rate: anchor.value,
        p50Ms: m.anchors.reduce((s, a) => s + a.p50Ms, 0) / m.anchors.length,
        p99Ms: m.anchors.reduce((s, a) => s + a.p99Ms, 0) / m.anchors.length,
      };
      const subtitle = `${new Date().toISOString().slice(0, 16)}Z, ${options.workers} workers, ${before.cores} cores, load average ${before.loadAverage.split(' ')[0]} before`;
      writeFileSync(chart, await latencyChartSvg(m.curve, anchorLatency, subtitle));
    }
    let text: string;
    if (values.json) {
      text = `${JSON.stringify(
        {
          options,
          machine: { before, after, autovacuum, wake },
          workerSettings: workerSettings(),
          ...report,
          chart,
          measurements: m,
          verify: { ok: check.ok, ledger_ok: check.report.ok, lost: check.lost, checks: check.report.checks },
        },
        (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v),
        2,
      )}\n`;
    } else {
      const parts = [
        `${heading}\n`,
        table(
          ['figure', 'value', 'unit', 'x anchor', 'how'],
          report.rows.map((r) => [
            r.label,
            formatNumber(r.value),
            r.unit,
            r.ratio === undefined ? '' : formatNumber(r.ratio),
            r.note,
          ]),
        ),
        '',
        table(
          ['SPEC 7 target', 'measured', 'target', 'result'],
          report.targets.map((t) => [
            t.label,
            formatNumber(t.value),
            t.target,
            t.pass ? 'pass' : Number.isFinite(t.value) ? 'MISSED' : 'not measured',
          ]),
        ),
        `${missed.length ? `missed: ${missed.map((t) => t.label).join('; ')}` : 'every target met'}\n`,
      ];
      if (report.curve.length) {
        parts.push(
          `Latency against load (enqueue -> result seen by a reader; the anchor: one transaction, begin -> commit)${chart ? `; chart: ${chart}` : ''}:`,
          table(curveHeaders, report.curve),
          '',
        );
      }
      if (report.costs.length) {
        parts.push(
          `Where the time goes (per command, inside each window; CPU from /proc/<pid>/stat of the bench database's backends by application_name, and of the worker processes):`,
          table(costHeaders, report.costs),
        );
      }
      text = `${parts.join('\n')}\n${checkText(check)}`;
    }
    process.stdout.write(text);
    writeFileSync(resolve(options.out, values.json ? 'report.json' : 'report.txt'), text);
    return check.ok && (!values.check || missed.length === 0);
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
  for (const workers of [1, 2, 4])
    rows.push(await scalingRun(`${workers} worker process${workers > 1 ? 'es' : ''}`, workers, options.accounts, 0));
  for (const accounts of [1_000, 1_000_000])
    rows.push(await scalingRun(`${accounts.toLocaleString('en-US')} accounts`, options.workers, accounts, 0));
  if (options.backlog > 0)
    rows.push(
      await scalingRun(
        `${options.backlog.toLocaleString('en-US')} jobs queued ahead`,
        options.workers,
        options.accounts,
        options.backlog,
      ),
    );
  const ok = rows.every((r) => r.verifyOk);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ options, scaling: rows, verify: { ok } }, null, 2)}\n`);
  } else {
    process.stdout.write(
      `${table(
        ['scenario', 'workers', 'accounts', 'queued ahead', 'commands/s', 'verify'],
        rows.map((r) => [
          r.label,
          String(r.workers),
          r.accounts.toLocaleString('en-US'),
          r.backlog.toLocaleString('en-US'),
          formatNumber(r.rate),
          r.verifyOk ? 'ok' : 'FAIL',
        ]),
      )}\n`,
    );
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
