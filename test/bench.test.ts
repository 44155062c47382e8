import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const benchScript = fileURLToPath(new URL('../bench/bench.ts', import.meta.url));

/** Runs the bench CLI to the end; resolves with its exit code and output. */
function runBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [benchScript, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

t.test('--help names every option', async (t) => {
  const { code, stdout } = await runBench(['--help']);
  t.equal(code, 0);
  for (const option of ['--seconds', '--accounts', '--workers', '--database-url', '--json', '--scaling', '--backlog']) {
    t.match(stdout, option, `documents ${option}`);
  }
});

t.test('a bad option value is refused with exit code 2', async (t) => {
  const { code, stderr } = await runBench(['--workers', 'zero']);
  t.equal(code, 2);
  t.match(stderr, '--workers');
});

// Figures are not asserted (no timing assertions): the run must print every row and a clean verify.
t.test('a tiny run prints every figure and every target, and verify passes', async (t) => {
  const { code, stdout, stderr } = await runBench(['--json', '--seconds', '1', '--warmup', '0.5', '--accounts', '200', '--workers', '1', '--chunk', '2000', '--raw-connections', '2']);
  t.equal(code, 0, stderr);
  const report = JSON.parse(stdout) as {
    rows: { key: string; value: number }[];
    targets: { key: string; pass: boolean; value: number }[];
    verify: { ok: boolean; ledger_ok: boolean; lost: number };
  };
  t.same(report.rows.map((r) => r.key), ['raw', 'queue', 'uniform', 'hot', 'p50', 'p99', 'rss']);
  for (const row of report.rows) t.ok(Number.isFinite(row.value) && row.value > 0, `${row.key} was measured: ${row.value}`);
  t.same(report.targets.map((x) => x.key), ['e2e_vs_raw', 'hot_vs_uniform', 'p99', 'rss']);
  for (const target of report.targets) t.type(target.pass, 'boolean');
  t.equal(report.verify.ledger_ok, true, 'verify found no breach');
  t.equal(report.verify.lost, 0, 'every enqueued command has its result');
  t.equal(report.verify.ok, true);
});

t.test('the bench runs its workers with the NODE_OPTIONS the Dockerfile deploys', async (t) => {
  const { deployedNodeOptions } = await import('../bench/workers.ts');
  const dockerfile = await readFile(fileURLToPath(new URL('../Dockerfile', import.meta.url)), 'utf8');
  t.equal(/^ENV NODE_OPTIONS="([^"]*)"$/m.exec(dockerfile)?.[1], deployedNodeOptions);
});
