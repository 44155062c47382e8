// Issue 24 item 2, the part still open: legal payloads of about 60 KiB times graphile-worker's
// fetch (3 x BILLING_CONCURRENCY jobs, 1,200 at the defaults) are ~72 MB of JSON text in one fetch
// result, more than a worker with the deployed --max-old-space-size=128 can hold while it parses
// them. Enqueues `--jobs` credits whose metadata makes each payload ~60 KB (refused as
// invalid_command by the metadata limit, but only after the worker fetched and read them), runs
// one real worker with the deployed V8 limits, and prints how many were answered, whether the
// worker survived and its peak RSS (sampled every 200 ms while it lived). Exit 1 if the worker
// died or not all were answered.
//
//   node chaos/large-payloads.ts [--jobs 5000]
//
// On a database of its own (DATABASE_URL's server, else 127.0.0.1:5432), dropped at the end.
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { resolveServerUrl } from '../src/db/connection.ts';
import { createBenchDatabase } from '../bench/database.ts';
import { deployedMallocArenaMax, deployedNodeOptions, startWorkers } from '../bench/workers.ts';

const { values } = parseArgs({ options: { jobs: { type: 'string', default: '5000' } } });
const jobs = Number(values.jobs);
const bench = await createBenchDatabase(await resolveServerUrl(), 10, 'large_payloads');
const workers = await startWorkers(bench, 1, 'real', {
  NODE_OPTIONS: deployedNodeOptions,
  MALLOC_ARENA_MAX: deployedMallocArenaMax,
  LOG_LEVEL: 'warn',
});
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
try {
  await bench.pool.query(
    `select count(billing.submit('credit', json_build_object('id', 'large-' || g, 'account', 'a1', 'amount', '1',
       'metadata', json_build_object('note', repeat('x', 60000))))) from generate_series(1, $1::int) g`,
    [jobs],
  );
  const started = Date.now();
  let answered = 0;
  let lastProgress = Date.now();
  let peakRss = 0;
  while (answered < jobs && workers.pids().every(alive) && Date.now() - lastProgress < 60_000) {
    await sleep(200);
    peakRss = Math.max(peakRss, ...workers.peakRss());
    const now = Number(
      (await bench.pool.query<{ n: string }>("select count(*) as n from billing.operations where id like 'large-%'"))
        .rows[0]!.n,
    );
    if (now > answered) lastProgress = Date.now();
    answered = now;
  }
  const survived = workers.pids().every(alive);
  console.log(
    `${jobs} payloads of ~60 KB: ${answered} answered in ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
      `worker ${survived ? 'alive' : 'died'}; peak RSS ${Math.round(peakRss / 2 ** 20)} MB`,
  );
  process.exitCode = survived && answered === jobs ? 0 : 1;
} finally {
  await workers.stop();
  await bench.drop();
}
