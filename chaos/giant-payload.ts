// Giant payloads against real workers with the deployed V8 limits (issue 24, item 2):
// `node chaos/giant-payload.ts [--sizes 200,600] [--workers 2] [--port 25410] [--wait 300]`.
// Starts a throwaway PostgreSQL cluster of its own (never the machine's server: a payload of
// hundreds of megabytes costs its backend a few times that), runs the workers under a supervisor
// that restarts any that exits (as a process manager would), sends one credit per size through
// billing.submit with a string of that many MB in its metadata (built by PostgreSQL: Node cannot
// hold a string over 512 MB), and prints for each: the result, the time it took, every worker's
// peak RSS, and how many workers exited. On 6735bcc, 600 MB killed every worker that fetched it
// (exit 70, "Cannot create a string longer than 0x1fffffe8") and never got a result; 200 MB got its
// result but left a worker at 573 MB RSS. Exit 0 when every payload got one invalid_command result
// and no worker exited, 1 otherwise.
// Measured with migration 0017 (2 workers, a machine at load ~20): 200 MB and 600 MB each ended
// invalid_command 0.8 and 0.5 s after their enqueue committed, worker peak RSS 122 MB, no exit. The
// enqueuing backend itself peaked at ~15x the payload (3 GB for 200 MB, 8.9 GB for 600 MB) while
// PostgreSQL built, parsed and copied the json: that cost is the sender's session, not a worker's.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { deployedMallocArenaMax, deployedNodeOptions } from '../bench/workers.ts';
import { migrate } from '../src/db/migrate.ts';
import { PostgresCluster } from '../src/embedded/postgres-cluster.ts';
import { WorkerSupervisor } from './workers.ts';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '200,600' },
    workers: { type: 'string', default: '2' },
    port: { type: 'string', default: '25410' },
    wait: { type: 'string', default: '300' },
  },
});
const sizes = values.sizes.split(',').map(Number);
const waitSeconds = Number(values.wait);

const workDir = mkdtempSync(path.join(tmpdir(), 'pg-billing-giant-'));
const cluster = new PostgresCluster({
  dataDir: path.join(workDir, 'pgdata'),
  port: Number(values.port),
  initdbSync: false,
  settings: { fsync: false, log_min_messages: 'warning' },
});
let supervisor: WorkerSupervisor | undefined;
let failed = false;

function peakRssMb(pid: number): number | undefined {
  try {
    return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
  } catch {
    return undefined;
  }
}

try {
  await cluster.start();
  const admin = new pg.Client({ connectionString: cluster.databaseUrl() });
  await admin.connect();
  await admin.query('create database billing_giant');
  await admin.end();
  const databaseUrl = cluster.databaseUrl('billing_giant');
  await migrate({ connectionString: databaseUrl });
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();

  const logDir = path.join(workDir, 'logs');
  mkdirSync(logDir);
  supervisor = new WorkerSupervisor({
    databaseUrl: () => databaseUrl,
    kinds: Array.from({ length: Number(values.workers) }, () => 'plain' as const),
    logDir,
    env: {
      NODE_OPTIONS: deployedNodeOptions,
      MALLOC_ARENA_MAX: deployedMallocArenaMax,
      BILLING_HTTP_PORT: '0',
      LOG_LEVEL: 'warn',
    },
    note: (line) => console.log(`  ${line}`),
  });
  supervisor.start();
  await client.query('select billing.submit(\'open_account\', \'{"id":"giant-open","account":"giant"}\')');

  for (const megabytes of sizes) {
    const id = `giant-${megabytes}mb`;
    const started = Date.now();
    await client.query(
      `select billing.submit('credit', json_build_object('id', $1::text, 'account', 'giant', 'amount', '1',
         'metadata', json_build_object('pad', repeat('x', $2::int * 1024 * 1024))))`,
      [id, megabytes],
    );
    const enqueued = Date.now();
    let result: { code: string; message: string | null } | undefined;
    while (!result && Date.now() - enqueued < waitSeconds * 1000) {
      const { rows } = await client.query<{ code: string; message: string | null }>(
        'select code, message from billing.operations where id = $1',
        [id],
      );
      result = rows[0];
      if (!result) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const exits = supervisor.exits.fatal70 + supervisor.exits.other;
    const rss = supervisor.workers.map((w) => `${peakRssMb(w.pid)?.toFixed(0) ?? '?'} MB`).join(', ');
    console.log(
      `${megabytes} MB: ${result ? `${result.code} (${result.message})` : `no result after ${waitSeconds} s`}; ` +
        `enqueued in ${((enqueued - started) / 1000).toFixed(1)} s, answered ${result ? `${((Date.now() - enqueued) / 1000).toFixed(1)} s later` : 'never'}; ` +
        `worker peak RSS ${rss}; worker exits so far ${exits}`,
    );
    if (result?.code !== 'invalid_command' || exits > 0) failed = true;
  }
  await client.end();
} catch (error) {
  console.error(error);
  failed = true;
} finally {
  await supervisor?.stop();
  await cluster.stop('immediate').catch(() => undefined);
  rmSync(workDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
