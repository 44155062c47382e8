// A real `billing worker` process: health endpoints, Prometheus counters that move while commands
// run, a graceful SIGTERM with jobs in flight (exit 0, nothing left locked, nothing lost), several
// workers on one host, a fresh runner after a lost liveness session, the metrics and the logs.
import t from 'tap';
import { createServer } from 'node:net';
import { defaultHttpPort } from '../src/config.ts';
import { CliProcess, startWorkerProcess } from './helpers/cli.ts';
import { createTestDatabase } from './helpers/database.ts';
import { resultOf } from './helpers/ledger.ts';
import { waitFor } from './helpers/wait.ts';

// Eleven worker processes, each a Node start and a graphile-worker runner: minutes on a loaded
// 2-core machine, more than the default per-file limit (.taprc). Every wait is on state or output.
t.setTimeout(600_000);
const database = await createTestDatabase('worker_process');
const running: CliProcess[] = [];
t.teardown(async () => {
  for (const worker of running) await worker.stop('SIGKILL');
  await database.drop();
});

/** A deadline for a few thousand commands through one worker on a loaded machine, not a timing claim. */
const drainMs = 180_000;

const count = async (sql: string, values?: unknown[]) =>
  Number((await database.query<{ n: bigint }>(sql, values)).rows[0]!.n);

/** Enqueues `n` credits of 1 to `account` in one statement, as an application would from SQL. */
async function enqueueCredits(account: string, prefix: string, n: number): Promise<void> {
  await database.query(
    `select graphile_worker.add_job('billing/credit',
      json_build_object('id', $1 || i, 'account', $2::text, 'amount', '1')) from generate_series(1, $3::int) as i`,
    [prefix, account, n],
  );
}

function commandsCounter(metrics: string, type: string, code: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(`billing_commands_total{type="${type}",code="${code}"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

t.test('/healthz, /readyz and /metrics; billing_commands_total moves while commands run', async (t) => {
  // At debug, where each applied command has its line.
  const { worker, httpPort } = await startWorkerProcess(database.url, {
    BILLING_CONCURRENCY: '50',
    LOG_LEVEL: 'debug',
  });
  running.push(worker);
  const get = async (path: string) => {
    const response = await fetch(`http://127.0.0.1:${httpPort}${path}`);
    return { status: response.status, body: await response.text() };
  };
  t.same(await get('/healthz'), { status: 200, body: 'ok\n' });
  t.match(await get('/readyz'), { status: 200, body: /^ready: 127\.0\.0\.1:\d+\n$/ });
  t.equal((await get('/nowhere')).status, 404);

  await database.query(
    `select graphile_worker.add_job('billing/open_account', '{"id":"m-open","account":"m-1"}'::json)`,
  );
  await resultOf(database, 'm-open');
  const before = commandsCounter((await get('/metrics')).body, 'credit', 'ok');
  t.equal(before, 0);

  // Two halves, the second enqueued once the first is counted: the counter is then seen between 0
  // and the total whatever the machine's speed (one burst may be applied between two scrapes).
  const total = 1500;
  const half = total / 2;
  const scraped: number[] = [];
  const scrapeUntil = (target: number) =>
    waitFor(
      `billing_commands_total to reach ${target}`,
      async () => {
        const body = (await get('/metrics')).body;
        scraped.push(commandsCounter(body, 'credit', 'ok'));
        return scraped.at(-1)! >= target ? body : undefined;
      },
      drainMs,
    );
  await enqueueCredits('m-1', 'm-credit-a', half);
  await scrapeUntil(half);
  await enqueueCredits('m-1', 'm-credit-b', half);
  const metrics = await scrapeUntil(total);
  t.match(metrics, /billing_command_latency_seconds_count\{type="credit"\} 1500/);
  t.match(metrics, /# TYPE billing_queue_depth gauge/);
  t.comment(`billing_commands_total{credit,ok} as scraped: ${[...new Set(scraped)].join(' -> ')}`);
  t.ok(
    scraped.some((value) => value > 0 && value < total),
    'seen moving while the commands ran',
  );
  t.ok(
    scraped.every((value, i) => i === 0 || value >= scraped[i - 1]!),
    'never goes down',
  );
  t.equal(scraped.at(-1), total, 'counts each command once');
  t.equal(await count("select count(*) as n from billing.operations where id like 'm-credit-%'"), total);
  t.match(
    worker.output,
    /"command_id":"m-credit-[ab]\d+","job_id":"\d+"/,
    'JSON logs at debug carry the command id and the job id',
  );

  const stopped = await worker.stop('SIGTERM');
  t.same(stopped, { code: 0, signal: null }, 'SIGTERM: exit 0');
});

t.test('SIGTERM with jobs in flight: exit 0, no job left locked, every command gets its result once', async (t) => {
  const { worker: first } = await startWorkerProcess(database.url, {
    BILLING_CONCURRENCY: '100',
    BILLING_BATCH_SIZE: '20',
  });
  running.push(first);
  await database.query(
    `select graphile_worker.add_job('billing/open_account', '{"id":"s-open","account":"s-1"}'::json)`,
  );
  await resultOf(database, 's-open');
  const total = 4000;
  await enqueueCredits('s-1', 's-credit-', total);
  const applied = () => count("select count(*) as n from billing.operations where id like 's-credit-%'");
  // Signal once the worker is busy: some results are in, most jobs still wait or run.
  await waitFor('the first results', async () => ((await applied()) > 50 ? true : undefined), drainMs);
  const exit = await first.stop('SIGTERM');
  t.same(exit, { code: 0, signal: null }, 'graceful stop: exit 0');
  t.match(first.output, /"msg":"worker stopped"/);
  t.equal(
    await count('select count(*) as n from graphile_worker.jobs where locked_at is not null'),
    0,
    'no job left locked',
  );
  const done = await applied();
  t.comment(`${done} of ${total} applied before the stop; the rest wait, unlocked`);
  t.equal(
    await count("select count(*) as n from graphile_worker.jobs where task_identifier = 'billing/credit'"),
    total - done,
    'every command without a result is still queued',
  );

  const { worker: second } = await startWorkerProcess(database.url, { BILLING_CONCURRENCY: '100' });
  running.push(second);
  await waitFor(`all ${total} results`, async () => ((await applied()) === total ? true : undefined), drainMs);
  t.equal(
    await count("select count(*) as n from billing.entries where operation_id like 's-credit-%'"),
    total,
    'one entry per command',
  );
  t.equal(
    (await database.query<{ balance: bigint }>("select balance from billing.accounts where account = 's-1'")).rows[0]!
      .balance,
    BigInt(total),
  );
  t.same(await second.stop('SIGINT'), { code: 0, signal: null }, 'SIGINT: exit 0 as well');
});

t.test(
  'metrics port: the default is a preference (several workers on one host), an explicit one is exact',
  async (t) => {
    // Hold the default port (if nobody else does already): a worker with nothing set still starts.
    // Held by another process on this shared machine instead, it may be freed while the test runs.
    const blocker = createServer();
    const held = await new Promise<boolean>((resolve) =>
      blocker
        .once('error', () => resolve(false))
        .listen({ port: defaultHttpPort, host: '0.0.0.0', exclusive: true }, () => resolve(true)),
    );
    t.teardown(() => blocker.close());
    const first = new CliProcess(['worker'], {
      DATABASE_URL: database.url,
      BILLING_HTTP_PORT: undefined,
      BILLING_CONCURRENCY: '10',
    });
    const second = new CliProcess(['worker'], {
      DATABASE_URL: database.url,
      BILLING_HTTP_PORT: undefined,
      BILLING_CONCURRENCY: '10',
    });
    running.push(first, second);
    const started = /"http_port":(\d+),"http_host":"([^"]+)"[^\n]*"msg":"worker started"/;
    const [a, b] = await Promise.all([first.waitFor(started), second.waitFor(started)]);
    const ports = [Number(a[1]), Number(b[1])];
    t.not(ports[0], ports[1], 'two workers, two ports');
    if (held) t.notOk(ports.includes(defaultHttpPort), 'neither took the port that was taken');
    t.same([a[2], b[2]], ['127.0.0.1', '127.0.0.1'], 'bound where the log says: loopback, the default');
    for (const port of ports)
      t.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200, `serves on ${port}`);
    t.match(
      first.output + second.output,
      /"msg":"default metrics port taken \(another worker on this host\?\): using the next free one"/,
    );
    await Promise.all([first.stop('SIGTERM'), second.stop('SIGTERM')]);

    // Asked for explicitly and taken: one line naming the setting, exit 1.
    const taken = ports[0]!;
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen({ port: taken, host: '0.0.0.0' }, resolve));
    t.teardown(() => holder.close());
    const explicit = new CliProcess(['worker'], { DATABASE_URL: database.url, BILLING_HTTP_PORT: String(taken) });
    running.push(explicit);
    t.same(await explicit.exited, { code: 1, signal: null });
    t.equal(
      explicit.output,
      `billing: BILLING_HTTP_PORT=${taken}: cannot listen on 127.0.0.1:${taken} (in use); choose another port, or unset it to take a free one\n`,
    );
  },
);

t.test('a worker that loses its liveness session stops that runner and starts a fresh one by itself', async (t) => {
  const { worker, httpPort } = await startWorkerProcess(database.url);
  running.push(worker);
  const livenessPids = async () =>
    (
      await database.query<{ pid: number }>(
        "select pid from pg_stat_activity where datname = current_database() and application_name = 'pg-billing liveness' and pid <> all($1::int[])",
        [otherLivenessPids],
      )
    ).rows.map((r) => r.pid);
  const otherLivenessPids: number[] = [];
  const pids = await waitFor(
    'its liveness connection',
    async () => ((await livenessPids()).length ? livenessPids() : undefined),
    60_000,
  );
  t.equal(pids.length, 1, 'one liveness connection');
  otherLivenessPids.push(pids[0]!);
  await database.query('select pg_terminate_backend($1)', [pids[0]]);
  await worker.waitFor(/"msg":"back at work: a fresh queue runner takes jobs"/);
  t.equal(
    (
      await waitFor(
        'a fresh liveness connection',
        async () => ((await livenessPids()).length ? livenessPids() : undefined),
        60_000,
      )
    ).length,
    1,
    'registered again, on a new session',
  );
  await database.query(
    `select graphile_worker.add_job('billing/open_account', '{"id":"l-open","account":"l-1"}'::json)`,
  );
  t.equal((await resultOf(database, 'l-open')).code, 'ok', 'and it works');
  const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  t.match(metrics, /^billing_runner_restarts_total 1$/m);
  t.ok(worker.running, 'the process kept running');
  t.same(await worker.stop('SIGTERM'), { code: 0, signal: null });
});

t.test(
  'metrics from the start: every known series at 0, build_info, reclaimed, failed for good, oldest waiting job',
  async (t) => {
    const { worker, httpPort } = await startWorkerProcess(database.url, {
      BILLING_RECOVERY_INTERVAL_MS: '200',
      BILLING_METRICS_INTERVAL_MS: '200',
    });
    running.push(worker);
    const scrape = async () => (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    const value = (metrics: string, series: string) => {
      const line = metrics.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    const fresh = await scrape();
    for (const series of [
      'billing_commands_total{type="debit",code="insufficient_funds"}',
      'billing_commands_total{type="transfer",code="same_account"}',
      'billing_commands_total{type="hold",code="invalid_command"}',
      'billing_commands_total{type="expire",code="ok"}',
      'billing_id_conflicts_total{type="capture"}',
      'billing_command_latency_seconds_count{type="release"}',
      'billing_job_retries_total{task="billing/credit"}',
      'billing_jobs_failed_total{task="billing/transfer"}',
      'billing_queue_depth{task="billing/expire_hold"}',
      'billing_jobs_reclaimed_total',
      'billing_runner_restarts_total',
    ])
      t.equal(value(fresh, series), 0, `${series} is there at 0`);
    t.match(fresh, /^billing_build_info\{version="\d+\.\d+\.\d+[^"]*",node_version="v\d+\.\d+\.\d+"\} 1$/m);
    t.match(fresh, /# HELP billing_queue_depth .*use max\(\), not sum\(\)/);

    // Oldest waiting job: one for a task no worker knows waits, due a minute ago.
    await database.query(
      "select graphile_worker.add_job('billing/no_such_task', '{}'::json, run_at => now() - interval '60 seconds')",
    );
    // The gauges are read by their own loop, every BILLING_METRICS_INTERVAL_MS: wait for its next read.
    const waiting = await waitFor('the gauges to see the job', async () => {
      const metrics = await scrape();
      return value(metrics, 'billing_queue_depth{task="billing/no_such_task"}') === 1 ? metrics : undefined;
    });
    t.ok(value(waiting, 'billing_oldest_waiting_job_seconds')! >= 60, 'the oldest waiting job is a minute old');
    await database.query(
      "delete from graphile_worker._private_jobs where task_id = (select id from graphile_worker._private_tasks where identifier = 'billing/no_such_task')",
    );
    await waitFor('the gauge to go back to 0 once the job is gone, not stay at 1', async () =>
      value(await scrape(), 'billing_queue_depth{task="billing/no_such_task"}') === 0 ? true : undefined,
    );

    // Failed for good: a fault on every attempt (a trigger), one attempt allowed.
    await database.query(`create function public.fail_boom() returns trigger language plpgsql as $$
    begin if new.operation_id = 'f-boom' then raise exception 'injected fault'; end if; return new; end $$`);
    await database.query(
      'create trigger fail_boom before insert on billing.entries for each row execute function public.fail_boom()',
    );
    t.teardown(() => database.query('drop trigger fail_boom on billing.entries; drop function public.fail_boom()'));
    await database.query(
      `select graphile_worker.add_job('billing/open_account', '{"id":"f-open","account":"f-1"}'::json)`,
    );
    await resultOf(database, 'f-open');
    await database.query(
      `select graphile_worker.add_job('billing/credit', '{"id":"f-boom","account":"f-1","amount":"1"}'::json, max_attempts => 1)`,
    );
    await waitFor(
      'billing_jobs_failed_total',
      async () => (value(await scrape(), 'billing_jobs_failed_total{task="billing/credit"}') === 1 ? true : undefined),
      60_000,
    );
    t.pass('a job that failed for good is counted');

    // Reclaimed: a job locked by a registered worker id whose session is gone (no such backend).
    // Registered and given its job in one statement, as a real worker is registered before it
    // locks anything: apart, a reaper pass in between drops the row of a dead id holding nothing.
    const deadId = 'pool-deadbeefdeadbeef00';
    const {
      rows: [job],
    } = await database.query<{ id: string }>(
      `select (graphile_worker.add_job('billing/open_account', '{"id":"r-open","account":"r-1"}'::json, run_at => now() + interval '1 hour')).id`,
    );
    await database.query(
      `with registered as (
         insert into billing.worker_liveness (id, backend_pid, backend_start, os_pid, host)
         values ($1, 0, '-infinity', 0, 'gone') returning id)
       update graphile_worker._private_jobs set locked_by = (select id from registered), locked_at = now(),
         run_at = now() where id = $2`,
      [deadId, job!.id],
    );
    await waitFor(
      'billing_jobs_reclaimed_total',
      async () => (value(await scrape(), 'billing_jobs_reclaimed_total') === 1 ? true : undefined),
      60_000,
    );
    t.equal((await resultOf(database, 'r-open')).code, 'ok', 'the reclaimed job ran');
    await worker.stop('SIGTERM');
  },
);

t.test('logs: short info lines, no expected warnings, nothing twice, no pg client in a connection error', async (t) => {
  const { worker } = await startWorkerProcess(database.url, { BILLING_CONCURRENCY: '200' });
  running.push(worker);
  await worker.waitFor(/"msg":"liveness registered"/);
  const idle = async () =>
    (
      await database.query<{ pid: number }>(`select pid from pg_stat_activity where datname = current_database()
    and application_name = 'pg-billing-queue' and state = 'idle' and query not ilike 'listen%'`)
    ).rows.map((r) => r.pid);
  // A connection idle in the server may still be checked out by graphile-worker (or be its notify
  // listener), and then its loss is not the pool's "idle connection lost" but a failed fetch (found
  // under load: three such lines in one run). Terminate one idle connection a round until the pool
  // reports one (each round waits for that log line, a state, not a time), counting the kills:
  // each killed connection is an event of its own and may log once.
  let kills = 0;
  await waitFor(
    'an idle queue connection lost and logged',
    async () => {
      const [pid] = await idle();
      if (pid === undefined) return undefined;
      await database.query('select pg_terminate_backend($1)', [pid]);
      kills += 1;
      return worker.waitFor(/"msg":"idle queue connection lost"/, 2_000).then(
        () => true,
        () => undefined,
      );
    },
    60_000,
  );
  t.same(await worker.stop('SIGTERM'), { code: 0, signal: null });

  const lines = worker.output.split('\n').filter((line) => line.startsWith('{'));
  const info = worker.logs().filter((entry) => (entry.level as number) >= 30);
  const longestLine = lines.reduce((a, b) => (b.length > a.length ? b : a), '');
  const longest = longestLine.length;
  t.ok(longest < 600, `every line is short (longest ${longest} bytes)`, { longestLine });
  t.match(
    info.find((entry) => entry.msg === 'liveness registered'),
    { id_count: 201 },
    '201 ids counted, not listed',
  );
  t.notOk(
    info.some((entry) => /maxPoolSize/.test(String(entry.msg))),
    'no maxPoolSize warning',
  );
  const messages = info.map((entry) => String(entry.msg));
  // Each killed connection may log once from the pool ("idle queue connection lost"). When the pool
  // handed the client out as the termination arrived, graphile-worker's fetch fails instead ("Client
  // has encountered a connection error and is not queryable") and logs each failed fetch attempt:
  // under load one run logged 3 of them for 2 kills. Those are attempts, not one line twice.
  const failedFetch = (message: string) => message.startsWith('Error occurred fetching jobs');
  t.same(
    messages.filter(
      (message, i) =>
        messages.indexOf(message) !== i && message !== 'idle queue connection lost' && !failedFetch(message),
    ),
    [],
    'no line comes twice',
  );
  const lostLines = messages.filter((message) => message === 'idle queue connection lost').length;
  t.ok(lostLines <= kills, `"idle queue connection lost" at most once for each of the ${kills} connections killed`);
  const lost = lines.find((line) => line.includes('idle queue connection lost'))!;
  t.notMatch(
    lost,
    /secretKey|processID|connectionParameters|password/,
    'the error is summarised, not the whole client',
  );
  t.match(lost, /"error":\{"message":"[^"]+"/);
});
