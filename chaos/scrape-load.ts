// Does scraping /metrics slow another client's commands? One real worker process (the deployed
// heap limit), 100,000 jobs waiting (due in an hour, so they stay), and a client that submits a
// credit and waits for its result, one after another: its latency first with no scraper, then with
// 32 scrapers fetching /metrics back to back. Prints p50/p99 of both phases.
//   node chaos/scrape-load.ts [--jobs 100000] [--scrapers 32] [--seconds 15]
// Runs on DATABASE_URL's server (else 127.0.0.1:5432) in a scratch database it drops afterwards.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { resolveServerUrl, withDatabase } from '../src/db/connection.ts';
import { migrate } from '../src/db/migrate.ts';

const { values: options } = parseArgs({
  options: {
    jobs: { type: 'string', default: '100000' },
    scrapers: { type: 'string', default: '32' },
    seconds: { type: 'string', default: '15' },
    // Internal: this script run as the scrapers' own process, so that their fetches do not slow
    // the measuring client's event loop.
    'scrape-port': { type: 'string' },
  },
});
if (options['scrape-port']) {
  const until = Date.now() + Number(options.seconds) * 1000;
  let scrapes = 0;
  let totalMs = 0;
  await Promise.all(
    Array.from({ length: Number(options.scrapers) }, async () => {
      while (Date.now() < until) {
        const started = performance.now();
        await (await fetch(`http://127.0.0.1:${options['scrape-port']}/metrics`)).text();
        totalMs += performance.now() - started;
        scrapes += 1;
      }
    }),
  );
  console.log(`; ${scrapes} scrapes, ${(totalMs / Math.max(1, scrapes)).toFixed(1)} ms each on average`);
  process.exit(0);
}
const jobs = Number(options.jobs);
const scraperCount = Number(options.scrapers);
const phaseMs = Number(options.seconds) * 1000;

const began = Date.now();
const step = (message: string) => console.log(`${((Date.now() - began) / 1000).toFixed(1)} s: ${message}`);
const serverUrl = await resolveServerUrl();
const name = `pgbilling_scrape_load_${process.pid}`;
const admin = new pg.Client({ connectionString: serverUrl });
await admin.connect();
await admin.query(`create database ${name}`);
const url = withDatabase(serverUrl, name);
await migrate({ connectionString: url });
step('migrated');
const db = new pg.Client({ connectionString: url, application_name: 'scrape-load-client' });
await db.connect();

const worker = spawn(
  process.execPath,
  [
    '--max-old-space-size=128',
    '--max-semi-space-size=8',
    fileURLToPath(new URL('../src/cli/main.ts', import.meta.url)),
    'worker',
  ],
  {
    env: { ...process.env, DATABASE_URL: url, BILLING_HTTP_PORT: '0', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  },
);
try {
  const httpPort = await new Promise<number>((resolve, reject) => {
    let output: string | undefined = '';
    worker.stdout.on('data', (chunk: Buffer) => {
      if (output === undefined) return;
      output += String(chunk);
      const started = /"http_port":(\d+)[^\n]*"msg":"worker started"/.exec(output);
      if (started) {
        output = undefined;
        resolve(Number(started[1]));
      }
    });
    worker.once('exit', (code) => reject(new Error(`worker exited (${code}) before it started`)));
  });
  step(`worker on :${httpPort}`);
  await db.query(`select billing.submit('open_account', '{"id":"open-c","account":"c"}')`);
  await db.query(`select * from billing.await_result('open-c', 60)`);
  // add_jobs in chunks: one add_job call per job took minutes on a loaded machine.
  for (let from = 1; from <= jobs; from += 10_000)
    await db.query(
      `select count(*) from graphile_worker.add_jobs(array(
         select row('billing/credit', json_build_object('id', 'waiting-' || i, 'account', 'c', 'amount', '1'),
                    null, now() + interval '1 hour', null, null, null, null)::graphile_worker.job_spec
         from generate_series($1::int, least($2::int, $1::int + 9999)) as i))`,
      [from, jobs],
    );
  await db.query('analyze graphile_worker._private_jobs');
  step(`${jobs} jobs waiting`);

  let sequence = 0;
  const commandLatencies = async (untilMs: number): Promise<number[]> => {
    const latencies: number[] = [];
    while (Date.now() < untilMs) {
      const id = `probe-${(sequence += 1)}`;
      const started = performance.now();
      await db.query(
        `select billing.submit('credit', json_build_object('id', $1::text, 'account', 'c', 'amount', '1'))`,
        [id],
      );
      await db.query('select * from billing.await_result($1, 60)', [id]);
      latencies.push(performance.now() - started);
    }
    return latencies;
  };
  const report = (label: string, latencies: number[], extra = '') => {
    const sorted = [...latencies].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(0);
    console.log(`${label}: ${sorted.length} commands, p50 ${at(0.5)} ms, p99 ${at(0.99)} ms${extra}`);
  };

  report('no scrapes', await commandLatencies(Date.now() + phaseMs));

  const scrapers = spawn(
    process.execPath,
    [
      fileURLToPath(import.meta.url),
      '--scrape-port',
      String(httpPort),
      '--scrapers',
      String(scraperCount),
      '--seconds',
      String(phaseMs / 1000),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let scraped = '';
  scrapers.stdout.on('data', (chunk: Buffer) => (scraped += String(chunk)));
  const scrapersDone = new Promise((resolve) => scrapers.once('exit', resolve));
  // The scrapers' process takes a moment to start: the first commands of this phase may miss them.
  const during = await commandLatencies(Date.now() + phaseMs);
  await scrapersDone;
  report(`${scraperCount} scrapers`, during, scraped.trim());
} finally {
  worker.kill('SIGTERM');
  await new Promise((resolve) => worker.once('exit', resolve));
  await db.end();
  await admin.query(`drop database if exists ${name} with (force)`);
  await admin.end();
}
