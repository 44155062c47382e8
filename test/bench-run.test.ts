import t from 'tap';
import { runBench } from './helpers/bench.ts';

// A file of its own: every phase with real worker processes takes a while on a loaded machine.
// Figures are not asserted (no timing assertions): the run must print every row and a clean verify.
// Each throughput window lasts until it holds enough jobs (bench/throughput.ts), so the run is as
// long as the machine makes it: 130 s at a load of 15, over 240 s at 35; this is its ceiling.
t.setTimeout(600_000);
t.test('a tiny run prints every figure and every target, and verify passes', async (t) => {
  const { code, stdout, stderr } = await runBench([
    '--json',
    '--seconds',
    '1',
    '--warmup',
    '0.5',
    '--accounts',
    '200',
    '--workers',
    '1',
    '--chunk',
    '2000',
    '--raw-connections',
    '2',
  ]);
  t.equal(code, 0, stderr);
  const report = JSON.parse(stdout) as {
    rows: { key: string; value: number; ratio?: number }[];
    targets: { key: string; pass: boolean; value: number }[];
    costs: string[][];
    verify: { ok: boolean; ledger_ok: boolean; lost: number };
  };
  t.same(
    report.rows.map((r) => r.key),
    [
      'anchor',
      'apply_one',
      'queue',
      'uniform',
      'burst',
      'hot',
      'transaction',
      'batch',
      'p50',
      'p99',
      'rss',
      'batch_rss',
    ],
  );
  for (const row of report.rows)
    t.ok(Number.isFinite(row.value) && row.value > 0, `${row.key} was measured: ${row.value}`);
  for (const row of report.rows.filter((r) => !r.key.endsWith('rss')))
    t.ok(Number.isFinite(row.ratio) && row.ratio! > 0, `${row.key} has its ratio to the anchor`);
  t.same(
    report.targets.map((x) => x.key),
    ['e2e_vs_anchor', 'burst_vs_anchor', 'hot_vs_uniform', 'p50', 'p99', 'rss'],
  );
  for (const target of report.targets) t.type(target.pass, 'boolean');
  t.same(
    report.costs.map((r) => r[0]),
    [
      'anchor',
      'anchor',
      'uniform',
      'hot account',
      'payment with fee',
      'burst drain',
      'batch jobs of 100',
      'latency at 10% load',
      'latency at 25% load',
      'latency at half load',
      'latency at 75% load',
    ],
    'CPU per command of each throughput phase, and of the latency phase',
  );
  t.equal(report.verify.ledger_ok, true, 'verify found no breach');
  t.equal(report.verify.lost, 0, 'every enqueued command has its result');
  t.equal(report.verify.ok, true);
});
