import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { runBench } from './helpers/bench.ts';
import { anchorFile, bindTransfer, loadAnchor, runAnchor, setUpAnchor } from '../bench/anchor.ts';
import type { LatencyFigures } from '../bench/latency.ts';
import { buildReport } from '../bench/report.ts';
import { createTestDatabase } from './helpers/database.ts';

t.test('--help names every option', async (t) => {
  const { code, stdout } = await runBench(['--help']);
  t.equal(code, 0);
  for (const option of [
    '--check',
    '--phases',
    '--batch-job-size',
    '--batch-concurrency',
    '--seconds',
    '--accounts',
    '--workers',
    '--database-url',
    '--json',
    '--out',
    '--burst',
    '--scaling',
    '--backlog',
  ]) {
    t.match(stdout, option, `documents ${option}`);
  }
});

t.test('a bad option value is refused with exit code 2', async (t) => {
  const { code, stderr } = await runBench(['--workers', 'zero']);
  t.equal(code, 2);
  t.match(stderr, '--workers');
  const phase = await runBench(['--phases', 'uniform,nonsense']);
  t.equal(phase.code, 2);
  t.match(phase.stderr, 'nonsense');
});

t.test('the anchor is the shared anchor file, split into its setup and its transfer', async (t) => {
  // The bench carries a copy of the project's anchor file; where the original is checked out beside
  // this repository (it is not part of it), the copy must still be verbatim.
  const shared = fileURLToPath(new URL('../../shared/anchors/plain-transfer.sql', import.meta.url));
  if (existsSync(shared))
    t.equal(
      await readFile(anchorFile, 'utf8'),
      await readFile(shared, 'utf8'),
      'bench/anchor/plain-transfer.sql is a verbatim copy',
    );
  const script = loadAnchor();
  t.equal(script.setup.length, 5, 'schema, three tables, the accounts');
  t.match(script.setup[0], /^create schema anchor$/);
  t.match(script.setup.at(-1), /generate_series\(1, 10000\)/);
  t.equal(script.transfer[0], 'begin');
  t.equal(script.transfer.at(-1), 'commit');
  t.ok(
    script.transfer.some((s) => s.startsWith("select pg_notify('anchor_results'")),
    'the notification is part of the transfer',
  );
  const bound = bindTransfer(script.transfer, 17, 4242);
  t.notOk(
    bound.some((s) => /:[ab]\b/.test(s)),
    'no placeholder is left',
  );
  t.match(bound[1], 'where id in (17, 4242) order by id for update');
});

t.test('the anchor runs as written: money is conserved and every transfer journals two entries', async (t) => {
  const database = await createTestDatabase('bench-anchor');
  t.teardown(() => database.drop());
  const bench = { url: database.url, name: database.name, pool: database.pool, accounts: 0, drop: async () => {} };
  await setUpAnchor(bench);
  const figures = await runAnchor(bench, 0.5, loadAnchor(), 2);
  t.ok(figures.transfers > 0 && figures.rate > 0, `ran ${figures.transfers} transfers`);
  const { rows } = await database.query<{ total: string; ops: number; entries: number; accounts: number }>(`
    select (select sum(balance)::text from anchor.accounts) as total, (select count(*)::int from anchor.ops) as ops,
           (select count(*)::int from anchor.entries) as entries, (select count(*)::int from anchor.accounts) as accounts`);
  t.same(rows[0], {
    total: String(10_000n * 1_000_000_000n),
    ops: figures.transfers,
    entries: 2 * figures.transfers,
    accounts: 10_000,
  });
});

t.test('the targets table says which target is missed, and an unmeasured one never passes', async (t) => {
  const anchor = { rate: 1_000, transfers: 1, p50Ms: 5, p99Ms: 10, pgCpuUsPerTransfer: 100 };
  const report = buildReport(
    {
      anchors: [anchor, { ...anchor, rate: 1_200 }],
      uniform: { rate: 6_000, enqueued: 1 },
      hot: { rate: 5_390, enqueued: 1 },
      transaction: { rate: 3_300, enqueued: 1 },
      burst: { rate: 5_000, enqueued: 60_000, seconds: 12, chunks: 6 },
      latency: {
        targetRate: 2_250,
        achievedRate: 2_250,
        samples: 1,
        enqueued: 1,
        warmupSeconds: 1,
        calls: 1,
        maxSendLagMs: 0,
        p50Ms: 12,
        p99Ms: 60,
        maxMs: 70,
        parts: { pickup: { p50Ms: 5, p99Ms: 30 }, batch: { p50Ms: 6, p99Ms: 25 }, read: { p50Ms: 1, p99Ms: 5 } },
      },
    },
    { workers: 2, accounts: 10, rawConnections: 8, batchJobSize: 100, batchConcurrency: 4 },
  );
  const byKey = Object.fromEntries(report.targets.map((x) => [x.key, x]));
  t.equal(report.rows.find((r) => r.key === 'anchor')?.value, 1_100, 'the anchor is the mean of its two runs');
  t.equal(byKey.e2e_vs_anchor?.value, 6_000 / 1_100);
  t.equal(byKey.e2e_vs_anchor?.pass, true, '5.5x the anchor meets 5x');
  t.equal(byKey.burst_vs_anchor?.value, 5_000 / 1_100);
  t.equal(byKey.burst_vs_anchor?.pass, false, 'a burst drained at 4.5x the anchor misses 5x');
  t.equal(byKey.hot_vs_uniform?.pass, false, '0.898 misses 0.9');
  t.equal(byKey.p50?.value, 12 / 5, 'p50 as a ratio to the anchor transaction p50');
  t.equal(byKey.p50?.pass, true, '2.4x meets 3x');
  t.equal(byKey.p99?.value, 60 / 10);
  t.equal(byKey.p99?.pass, false, '6x misses 3x');
  t.equal(byKey.rss?.pass, false, 'RSS was not measured');
  t.equal(report.rows.find((r) => r.key === 'uniform')?.ratio, 6_000 / 1_100);
  const transaction = report.rows.find((r) => r.key === 'transaction');
  t.equal(transaction?.label, 'end to end, payment with fee', 'a line for the two-leg transaction');
  t.equal(transaction?.ratio, 3_300 / 1_100, 'with its ratio to the anchor');
});

t.test(
  'a latency run at a rate chosen with --latency-rate is reported, but never meets the half-load targets',
  async (t) => {
    const anchor = { rate: 1_000, transfers: 1, p50Ms: 5, p99Ms: 10, pgCpuUsPerTransfer: 100 };
    const latency = {
      targetRate: 100,
      achievedRate: 100,
      samples: 1,
      enqueued: 1,
      warmupSeconds: 1,
      calls: 1,
      maxSendLagMs: 0,
      p50Ms: 5,
      p99Ms: 9,
      maxMs: 10,
      parts: { pickup: { p50Ms: 2, p99Ms: 4 }, batch: { p50Ms: 2, p99Ms: 4 }, read: { p50Ms: 1, p99Ms: 1 } },
      costs: {
        commands: 1_000,
        cpuUsPerCommand: { worker: 300 },
        batches: 500,
        commandsPerBatch: 2,
        commitsPerCommand: 3,
      },
    };
    const options = { workers: 2, accounts: 10, rawConnections: 8, batchJobSize: 100, batchConcurrency: 4 };
    const chosen = buildReport({ anchors: [anchor], latency, latencyAtHalfLoad: false }, options);
    t.equal(chosen.rows.find((r) => r.key === 'p50')?.label, 'latency p50 at a chosen rate');
    t.equal(chosen.targets.find((x) => x.key === 'p50')?.pass, false, '5 ms at 100/s is not the target met');
    t.equal(chosen.targets.find((x) => x.key === 'p99')?.pass, false);
    t.same(chosen.costs.at(-1)?.slice(0, 2), ['latency at a chosen rate', '100'], 'its CPU per command is shown');
    const half = buildReport({ anchors: [anchor], latency }, options);
    t.equal(half.targets.find((x) => x.key === 'p50')?.pass, true, 'the same figures at half load meet it');
  },
);

t.test('--check exits 1 when a target is missed or not measured, and the table names it', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'bench-out-'));
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const args = ['--phases', 'anchor', '--seconds', '0.5', '--accounts', '10', '--out', out];
  const plain = await runBench(args);
  t.equal(plain.code, 0, 'without --check a missed target is reported, not an error');
  t.match(plain.stdout, /end to end, steady \/ anchor\s+n\/a\s+>= 5\s+not measured/);
  t.match(plain.stdout, /end to end, burst drain \/ anchor\s+n\/a\s+>= 5\s+not measured/);
  t.match(plain.stdout, 'missed: end to end, steady / anchor; end to end, burst drain / anchor; hot account / uniform');
  t.equal(await readFile(join(out, 'report.txt'), 'utf8'), plain.stdout, 'the report is written beside the chart');
  const checked = await runBench(['--check', ...args]);
  t.equal(checked.code, 1, checked.stderr);
});

t.test('the bench runs its workers with the NODE_OPTIONS and MALLOC_ARENA_MAX the Dockerfile deploys', async (t) => {
  const { deployedMallocArenaMax, deployedNodeOptions } = await import('../bench/workers.ts');
  const dockerfile = await readFile(fileURLToPath(new URL('../Dockerfile', import.meta.url)), 'utf8');
  t.equal(/^ENV NODE_OPTIONS="([^"]*)"$/m.exec(dockerfile)?.[1], deployedNodeOptions);
  t.equal(/^ENV MALLOC_ARENA_MAX="([^"]*)"$/m.exec(dockerfile)?.[1], deployedMallocArenaMax);
  const scripts = JSON.parse(await readFile(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8')) as {
    scripts: { start: string };
  };
  t.ok(scripts.scripts.start.includes(deployedNodeOptions), 'npm start runs with the same V8 limits');
  t.ok(scripts.scripts.start.includes(`MALLOC_ARENA_MAX=${deployedMallocArenaMax} `), 'and the same arenas');
});

t.test('the latency chart is an SVG with the curve, the anchor and the targets', async (t) => {
  const { latencyChartSvg } = await import('../bench/chart.ts');
  const point = (load: number, p50Ms: number, p99Ms: number) => ({
    load,
    figures: { achievedRate: 7_000 * load, p50Ms, p99Ms } as LatencyFigures,
  });
  const svg = await latencyChartSvg(
    [point(0.1, 8, 20), point(0.25, 9, 25), point(0.5, 14, 40), point(0.75, 30, 90)],
    { rate: 1_400, p50Ms: 5, p99Ms: 17 },
    'a test run',
  );
  t.match(svg, /^<svg /);
  for (const text of ['a test run', 'p50', 'p99', 'anchor transaction', "target: 3x the anchor's", '10%', '75%'])
    t.ok(svg.includes(text.replace("'", '&#39;')) || svg.includes(text), `shows "${text}"`);
});
