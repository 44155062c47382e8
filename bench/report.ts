import type { AnchorFigures } from './anchor.ts';
import type { LatencyFigures } from './latency.ts';
import type { BurstDrain, Measured } from './throughput.ts';

export interface Row {
  key: string;
  label: string;
  value: number;
  unit: string;
  /** The figure divided by the anchor's (rates by its rate, latencies by its transaction time). */
  ratio?: number;
  note: string;
}

export interface Target {
  key: string;
  label: string;
  value: number;
  target: string;
  /** False also when the figure was not measured: --check cannot vouch for it. */
  pass: boolean;
}

/** What one run measured; a phase that did not run leaves its figure out. */
export interface Measurements {
  /** The anchor before and after the worker phases; ratios use their mean. */
  anchors: AnchorFigures[];
  applyPath?: number;
  queue?: number;
  uniform?: Measured;
  hot?: Measured;
  /** End to end, a payment and its fee as one two-leg transaction per command. */
  transaction?: Measured;
  /** The drain of a burst enqueued while the workers run. */
  burst?: BurstDrain;
  batch?: Measured;
  /** The latency at half load: the point of the curve that the targets use. */
  latency?: LatencyFigures;
  /** The latency curve: each point at a share (0.1 = 10%) of the uniform rate. */
  curve?: CurvePoint[];
  /** False when --latency-rate chose the latency phase's rate: its figures are not the targets'. */
  latencyAtHalfLoad?: boolean;
  /** Peak RSS per worker process, bytes, with commands one per job. */
  rss?: number[];
  /** The same after the batch-job phase too. */
  batchRss?: number[];
}

export interface CurvePoint {
  /** Share of the end-to-end (uniform) rate asked for. */
  load: number;
  figures: LatencyFigures;
}

/** The loads of the latency curve (SPEC 7), as shares of the end-to-end maximum; 0.5 is the targets'. */
export const curveLoads = [0.1, 0.25, 0.5, 0.75];

/** SPEC 7's targets, all ratios to figures of the same run. */
export const targetRatios = { endToEnd: 5, hotVsUniform: 0.9, latencyVsAnchor: 3, rssMb: 150 };

interface ReportOptions {
  workers: number;
  accounts: number;
  rawConnections: number;
  batchJobSize: number;
  batchConcurrency: number;
}

export const costHeaders = [
  'scenario',
  'commands/s',
  'PG ledger us',
  'PG queue us',
  'PG enqueue us',
  'PG reader us',
  'PG other us',
  'worker us',
  'service us',
  'CPU total us',
  'cmds/batch',
  'commits/cmd',
];

/** The latency's parts at one percentile (each part's own: they do not add up exactly). */
const parts = (l: LatencyFigures, at: 'p50Ms' | 'p99Ms') =>
  `parts: pickup ${formatNumber(l.parts.pickup[at])}, batch ${formatNumber(l.parts.batch[at])}, read ${formatNumber(l.parts.read[at])} ms`;

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

/**
 * The performance table (docs/performance.md): figures with their ratio to the anchor, the targets,
 * and the CPU per command.
 */
export function buildReport(
  m: Measurements,
  o: ReportOptions,
): { rows: Row[]; targets: Target[]; costs: string[][]; curve: string[][] } {
  const anchorRate = mean(m.anchors.map((a) => a.rate));
  const anchorP50 = mean(m.anchors.map((a) => a.p50Ms));
  const anchorP99 = mean(m.anchors.map((a) => a.p99Ms));
  const rows: Row[] = [];
  const rate = (key: string, label: string, value: number | undefined, unit: string, note: string) => {
    if (value !== undefined) rows.push({ key, label, value, unit, ratio: value / anchorRate, note });
  };
  if (m.anchors.length) {
    rows.push({
      key: 'anchor',
      label: 'anchor: plain SQL transfer',
      value: anchorRate,
      unit: 'transfers/s',
      ratio: 1,
      note: `bench/anchor/plain-transfer.sql, 8 connections, 10,000 accounts, 1 transfer a transaction; runs: ${m.anchors.map((a) => formatNumber(a.rate)).join(' and ')}/s (before and after the workers), mean used`,
    });
  }
  rate(
    'apply_one',
    'service apply path, 1 transfer/txn',
    m.applyPath,
    'transfers/s',
    `src/ledger/apply.ts for one transfer per transaction, no queue, ${o.rawConnections} connections (not the anchor: what grouping buys)`,
  );
  rate('queue', 'queue ceiling', m.queue, 'jobs/s', `no-op jobs, ${o.workers} worker processes, service settings`);
  rate(
    'uniform',
    'end to end, uniform',
    m.uniform?.rate,
    'commands/s',
    `one command per job, add_jobs -> committed result, ${o.workers} workers, ${o.accounts} accounts`,
  );
  rate(
    'burst',
    'end to end, burst drain',
    m.burst?.rate,
    'commands/s',
    m.burst
      ? `${m.burst.enqueued.toLocaleString('en-US')} transfers by add_jobs in ${m.burst.chunks} calls while the workers run, first enqueue -> last result seen: ${formatNumber(m.burst.seconds)} s`
      : '',
  );
  rate('hot', 'end to end, hot account', m.hot?.rate, 'commands/s', '90% of transfers touch one account');
  rate(
    'transaction',
    'end to end, payment with fee',
    m.transaction?.rate,
    'commands/s',
    'one transaction command per job: two legs, from -> to, then a fee of 1 from to; uniform accounts',
  );
  rate(
    'batch',
    `end to end, batch jobs of ${o.batchJobSize}`,
    m.batch?.rate,
    'commands/s',
    `the producer sends ${o.batchJobSize} commands per job; workers with BILLING_CONCURRENCY=${o.batchConcurrency}`,
  );
  const l = m.latency;
  const load = m.latencyAtHalfLoad === false ? 'at a chosen rate' : 'at half load';
  if (l) {
    const bound = l.achievedRate < 0.9 * l.targetRate ? ', enqueue-bound' : '';
    rows.push(
      {
        key: 'p50',
        label: `latency p50 ${load}`,
        value: l.p50Ms,
        unit: 'ms',
        ratio: l.p50Ms / anchorP50,
        note: `at ${formatNumber(l.achievedRate)}/s (asked ${formatNumber(l.targetRate)}/s${bound}), enqueue -> result read by a LISTENing cursor reader; ${l.samples} samples, timed after ${formatNumber(l.warmupSeconds)} s at that rate; ${parts(l, 'p50Ms')} (x anchor: its transaction, p50 ${formatNumber(anchorP50)} ms)`,
      },
      {
        key: 'p99',
        label: `latency p99 ${load}`,
        value: l.p99Ms,
        unit: 'ms',
        ratio: l.p99Ms / anchorP99,
        note: `max ${formatNumber(l.maxMs)} ms; ${parts(l, 'p99Ms')}; ${l.calls} add_jobs calls, generator lag max ${formatNumber(l.maxSendLagMs)} ms (anchor's transaction p99 ${formatNumber(anchorP99)} ms)`,
      },
    );
  }
  const peakRss = m.rss?.length ? Math.max(...m.rss) / 2 ** 20 : undefined;
  if (peakRss !== undefined) {
    rows.push({
      key: 'rss',
      label: 'worker RSS, peak',
      value: peakRss,
      unit: 'MB',
      note: `VmHWM per process, commands one per job: ${m.rss!.map((b) => formatNumber(b / 2 ** 20)).join(', ')}`,
    });
  }
  if (m.batchRss?.length) {
    rows.push({
      key: 'batch_rss',
      label: 'worker RSS, peak with batch jobs',
      value: Math.max(...m.batchRss) / 2 ** 20,
      unit: 'MB',
      note: `the batch phase's workers: ${m.batchRss.map((b) => formatNumber(b / 2 ** 20)).join(', ')} (${o.batchConcurrency} jobs x ${o.batchJobSize} commands in flight each)`,
    });
  }

  const halfLoad = m.latencyAtHalfLoad === false ? undefined : l;
  const r = targetRatios;
  const e2eRatio = (m.uniform?.rate ?? NaN) / anchorRate;
  const burstRatio = (m.burst?.rate ?? NaN) / anchorRate;
  const hotRatio = (m.hot?.rate ?? NaN) / (m.uniform?.rate ?? NaN);
  const target = (key: string, label: string, value: number, text: string, ok: (v: number) => boolean): Target => ({
    key,
    label,
    value,
    target: text,
    pass: Number.isFinite(value) && ok(value),
  });
  const targets: Target[] = [
    target('e2e_vs_anchor', 'end to end, steady / anchor', e2eRatio, `>= ${r.endToEnd}`, (v) => v >= r.endToEnd),
    target(
      'burst_vs_anchor',
      'end to end, burst drain / anchor',
      burstRatio,
      `>= ${r.endToEnd}`,
      (v) => v >= r.endToEnd,
    ),
    target('hot_vs_uniform', 'hot account / uniform', hotRatio, `>= ${r.hotVsUniform}`, (v) => v >= r.hotVsUniform),
    target(
      'p50',
      'p50 at half load / anchor p50',
      (halfLoad?.p50Ms ?? NaN) / anchorP50,
      `<= ${r.latencyVsAnchor}`,
      (v) => v <= r.latencyVsAnchor,
    ),
    target(
      'p99',
      'p99 at half load / anchor p99',
      (halfLoad?.p99Ms ?? NaN) / anchorP99,
      `<= ${r.latencyVsAnchor}`,
      (v) => v <= r.latencyVsAnchor,
    ),
    target('rss', 'worker RSS (MB)', peakRss ?? NaN, `<= ${r.rssMb}`, (v) => v <= r.rssMb),
  ];

  const costs: string[][] = [];
  const us = (x: number | undefined) => (x === undefined ? '' : formatNumber(x));
  for (const a of m.anchors) {
    costs.push([
      'anchor',
      formatNumber(a.rate),
      us(a.pgCpuUsPerTransfer),
      '',
      '',
      '',
      '',
      '',
      '',
      us(a.pgCpuUsPerTransfer),
      '1',
      '1',
    ]);
  }
  const measured: [string, (Pick<Measured, 'costs'> & { rate: number }) | undefined][] = [
    ['uniform', m.uniform],
    ['hot account', m.hot],
    ['payment with fee', m.transaction],
    ['burst drain', m.burst],
    [`batch jobs of ${o.batchJobSize}`, m.batch],
    // Each point of the curve; at half load, the targets' point.
    ...(m.curve?.length ? m.curve : l ? [{ load: 0.5, figures: l }] : []).map(
      ({ load: share, figures: f }): [string, (Pick<Measured, 'costs'> & { rate: number }) | undefined] => [
        share === 0.5 ? `latency ${load}` : `latency at ${Math.round(share * 100)}% load`,
        { rate: f.achievedRate, ...(f.costs ? { costs: f.costs } : {}) },
      ],
    ),
  ];
  // PG enqueue is the load generator's connections (add_jobs, counting): lumpy in the throughput
  // phases, since one add_jobs of --chunk commands lands in whichever window it runs; in the latency
  // phase, one add_jobs every 10 ms. PG reader is the results reader of the latency phase. Both are
  // the clients' cost, not the service's: the service's is PG ledger + PG queue + worker.
  for (const [label, x] of measured) {
    const c = x?.costs;
    if (!x || !c) continue;
    const cpu = c.cpuUsPerCommand;
    const enqueue = (cpu['pg:pg-billing-bench'] ?? 0) + (cpu['pg:pg-billing-bench-enqueue'] ?? 0);
    const reader = cpu['pg:pg-billing-bench-observer'] ?? 0;
    const known = [
      'pg:pg-billing-worker',
      'pg:pg-billing-queue',
      'pg:pg-billing-bench',
      'pg:pg-billing-bench-enqueue',
      'pg:pg-billing-bench-observer',
      'worker',
    ];
    const other = Object.entries(cpu)
      .filter(([g]) => !known.includes(g))
      .reduce((s, [, v]) => s + v, 0);
    const total = Object.values(cpu).reduce((s, v) => s + v, 0);
    costs.push([
      label,
      formatNumber(x.rate),
      us(cpu['pg:pg-billing-worker'] ?? 0),
      us(cpu['pg:pg-billing-queue'] ?? 0),
      us(enqueue),
      us(reader),
      us(other),
      us(cpu.worker ?? 0),
      us((cpu['pg:pg-billing-worker'] ?? 0) + (cpu['pg:pg-billing-queue'] ?? 0) + (cpu.worker ?? 0)),
      us(total),
      formatNumber(c.commandsPerBatch),
      formatNumber(c.commitsPerCommand),
    ]);
  }
  const curve: string[][] = (m.curve ?? []).map(({ load: share, figures: f }) => [
    `${Math.round(share * 100)}%`,
    formatNumber(f.targetRate),
    formatNumber(f.achievedRate),
    formatNumber(f.p50Ms),
    formatNumber(f.p99Ms),
    formatNumber(f.p50Ms / anchorP50),
    formatNumber(f.p99Ms / anchorP99),
  ]);
  if (curve.length && m.anchors.length)
    curve.push(['anchor', '', formatNumber(anchorRate), formatNumber(anchorP50), formatNumber(anchorP99), '1', '1']);
  return { rows, targets, costs, curve };
}

export const curveHeaders = ['load', 'asked/s', 'achieved/s', 'p50 ms', 'p99 ms', 'p50 x anchor', 'p99 x anchor'];

export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString('en-US');
  return value.toFixed(Math.abs(value) >= 10 ? 1 : 2);
}

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  // Text (the first column and a last 'how') reads left-aligned, numbers right-aligned.
  const left = (i: number) => i === 0 || (i === headers.length - 1 && headers[i] === 'how');
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (left(i) ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
