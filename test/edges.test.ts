import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { createBillingClient } from '../src/client/client.ts';
import { verifyLedger } from '../src/ledger/verify.ts';
import { runCli } from './helpers/cli.ts';
import { connectAsClientRole } from './helpers/client-role.ts';
import { createTestDatabase } from './helpers/database.ts';
import { balanceOf, drained, resultOf, run, type ResultRow } from './helpers/ledger.ts';
import { startTestWorker } from './helpers/worker.ts';
import { wrongTypeCases } from './helpers/wrong-types.ts';
import { waitFor } from './helpers/wait.ts';

// Issue 9: each edge a hostile client found, driven through a real worker from SQL, as the client
// role (billing.submit) and as the owner (graphile_worker.add_job). Each test here failed on 8bf903f.
const database = await createTestDatabase('edges');
let worker = await startTestWorker(database);

const client = await connectAsClientRole(database);

t.teardown(async () => {
  await client.end();
  await worker.stop();
  await database.drop();
});

/** billing.submit as the client role, the payload as exact JSON text; the job id. */
async function submit(type: string, json: string): Promise<bigint> {
  const { rows } = await client.query<{ id: string }>('select billing.submit($1, $2::json)::text as id', [type, json]);
  return BigInt(rows[0]!.id);
}

/** graphile_worker.add_job as the owner, the payload as exact JSON text; the job id. */
async function addJob(task: string, json: string): Promise<bigint> {
  const { rows } = await database.query<{ id: bigint }>('select (graphile_worker.add_job($1, $2::json)).id', [
    `billing/${task}`,
    json,
  ]);
  return rows[0]!.id;
}

/** The stored request as text, exactly as PostgreSQL keeps it. */
async function requestText(id: string): Promise<string> {
  const { rows } = await database.query<{ request: string }>(
    'select request::text as request from billing.operations where id = $1',
    [id],
  );
  return rows[0]!.request;
}

/** Waits until a job is gone from the queue (done), and returns the results it wrote. */
async function resultsOfJob(jobId: bigint, timeoutMs = 30_000): Promise<ResultRow[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows: jobs } = await database.query<{ last_error: string | null }>(
      'select last_error from graphile_worker.jobs where id = $1',
      [jobId],
    );
    if (jobs.length === 0) {
      const { rows } = await database.query<ResultRow>(
        'select * from billing.operations where job_id = $1 order by seq',
        [jobId],
      );
      return rows;
    }
    if (jobs[0]!.last_error) throw new Error(`job ${jobId} failed: ${jobs[0]!.last_error}`);
    if (Date.now() > deadline) throw new Error(`job ${jobId} still queued after ${timeoutMs} ms`);
    await sleep(20);
  }
}

for (const [type, payload] of [
  ['open_account', { id: 'edge-open-a', account: 'edge-a' }],
  ['credit', { id: 'edge-fund-a', account: 'edge-a', amount: '100000' }],
] as const) {
  const result = await run(database, type, payload);
  if (result.code !== 'ok') throw new Error(`setup ${payload.id}: ${result.code}`);
}

t.test('1. amounts and ttl_seconds are judged by their JSON text; the request shows what was sent', async (t) => {
  const before = await balanceOf(database, 'edge-a');
  let n = 0;
  for (const amount of ['0.99999999999999999', '1.9999999999999999', '1e3', '1.0', '1E2']) {
    for (const send of [submit, addJob]) {
      const id = `amount-${++n}`;
      const json = `{"id":"${id}","account":"edge-a","amount":${amount}}`;
      await send('credit', json);
      const result = await resultOf(database, id);
      t.equal(result.code, 'invalid_command', `${amount}: ${result.message}`);
      t.match(result.message, /^amount: must be a positive whole number written with digits only/);
      t.equal(await requestText(id), json, 'stored as sent');
    }
  }
  for (const ttl of ['1.0', '6e1', '59.99999999999999999']) {
    const id = `ttl-${++n}`;
    const json = `{"id":"${id}","account":"edge-a","amount":"5","ttl_seconds":${ttl}}`;
    await submit('hold', json);
    const result = await resultOf(database, id);
    t.equal(result.code, 'invalid_command', `ttl ${ttl}`);
    t.match(result.message, /^ttl_seconds: /);
    t.equal(await requestText(id), json);
  }
  t.same(await balanceOf(database, 'edge-a'), before, 'nothing applied');
  const whole = await (async () => {
    await submit('credit', '{"id":"amount-whole","account":"edge-a","amount":7}');
    return resultOf(database, 'amount-whole');
  })();
  t.equal(whole.code, 'ok', 'a JSON number written with digits only is an amount');
});

t.test('2. metadata is stored digit for digit; the fingerprint tells such payloads apart', async (t) => {
  const json = '{"id":"meta-1","account":"edge-a","amount":"1","metadata":{"order":12345678901234567890,"big":1e400}}';
  await submit('credit', json);
  t.equal((await resultOf(database, 'meta-1')).code, 'ok');
  t.equal(await requestText('meta-1'), json, 'the metadata as sent');
  const balance = (await balanceOf(database, 'edge-a'))!.balance;

  const again = await submit('credit', json);
  t.same(await resultsOfJob(again), [], 'the same payload again is a replay: no new result');
  const other = await submit('credit', json.replace('67890', '67891'));
  t.same(await resultsOfJob(other), [], 'another number under the same id is not applied');
  const { rows: conflicts } = await database.query<{ request: string }>(
    "select request::text as request from billing.id_conflicts where id = 'meta-1'",
  );
  t.same(
    conflicts.map((c) => c.request),
    [json.replace('67890', '67891')],
    'it is an id_conflict, kept as sent',
  );
  t.equal((await balanceOf(database, 'edge-a'))!.balance, balance, 'credited once');

  const replacement = '{"id":"meta-2","account":"edge-a","amount":"1","metadata":{"note":"a\\ufffdb"}}';
  await submit('credit', replacement);
  t.equal((await resultOf(database, 'meta-2')).code, 'ok');
  const nul = await submit('credit', replacement.replace('\\ufffd', '\\u0000'));
  t.same(await resultsOfJob(nul), []);
  const { rows } = await database.query<{ request: string }>(
    "select request::text as request from billing.id_conflicts where id = 'meta-2'",
  );
  // Stored with U+FFFD in place of the NUL, so that the table reads as jsonb; the fingerprint
  // (of the payload as sent) is what told the two apart.
  t.same(
    rows.map((r) => r.request),
    [replacement.replace('\\ufffd', '\ufffd')],
    '"a\\u0000b" is not a replay of "a\\ufffdb"',
  );

  // \u0000 and lone surrogates are refused in metadata too (issue 24, item 7): every stored request
  // reads as jsonb.
  await submit(
    'credit',
    '{"id":"meta-3","account":"edge-a","amount":"1","metadata":{"note":"a\\u0000b","lone":"\\ud800"}}',
  );
  t.match(
    await resultOf(database, 'meta-3'),
    { code: 'invalid_command', message: /^metadata\.note: contains a NUL character/ },
    'metadata with \\u0000 and a lone surrogate is refused',
  );
  t.equal(
    await requestText('meta-3'),
    '{"id":"meta-3","account":"edge-a","amount":"1","metadata":{"note":"a\ufffdb","lone":"\ufffd"}}',
  );
});

t.test('3. ids the service derives belong to the service', async (t) => {
  await t.test('billing.submit refuses them up front', async (t) => {
    for (const [type, json] of [
      ['release', '{"id":"expire:sq-h1","hold":"sq-h1"}'],
      ['credit', '{"id":"job:1","account":"edge-a","amount":"1"}'],
      ['credit', '[{"id":"ok-1","account":"edge-a","amount":"1"},{"id":"job:2","account":"edge-a","amount":"1"}]'],
      ['hold', '{"id":"h-x","account":"edge-a","amount":"1","hold":"expire:x"}'],
      ['expire_hold', '{"hold":"sq-h1"}'],
    ] as const) {
      await t.rejects(submit(type, json), { code: '22023' }, `${type} ${json}`);
    }
  });

  await t.test("an expire: id sent to the queue does not block the hold's expiry", async (t) => {
    const jobId = await addJob('release', '{"id":"expire:sq-h1","hold":"sq-h1"}');
    const [refused] = await resultsOfJob(jobId);
    t.match(refused, {
      id: `job:${jobId}`,
      code: 'invalid_command',
      message: /^id: must not start with "job:" or "expire:" \(ids the service derives\)$/,
    });
    await submit('hold', '{"id":"sq-h1","account":"edge-a","amount":"10","ttl_seconds":1}');
    t.equal((await resultOf(database, 'sq-h1')).code, 'ok');
    const expired = await resultOf(database, 'expire:sq-h1', 30_000);
    t.match(expired, { type: 'expire', status: 'applied' }, 'the hold expired, released by the service');
    const { rows } = await database.query<{ status: string }>("select status from billing.holds where hold = 'sq-h1'");
    t.equal(rows[0]!.status, 'expired');
  });

  await t.test("a job: id cannot take a later command's id", async (t) => {
    await drained(database);
    const before = (await balanceOf(database, 'edge-a'))!.balance;
    // billing.submit refuses the thief (above); as the owner, add_job reaches the worker.
    const first = await addJob('credit', '{"id":"seq-probe","account":"edge-a","amount":"1"}');
    const thief = await addJob('credit', `{"id":"job:${first + 2n}","account":"edge-a","amount":"1"}`);
    const victim = await addJob('credit', '{"account":"edge-a","amount":"500"}');
    t.equal(victim, first + 2n, 'precondition: job ids were sequential');
    t.match(await resultsOfJob(thief), [{ id: `job:${thief}`, code: 'invalid_command', message: /^id: / }]);
    t.match(
      await resultsOfJob(victim),
      [{ id: `job:${victim}`, code: 'ok' }],
      'the credit without an id was applied under its own id',
    );
    t.equal((await balanceOf(database, 'edge-a'))!.balance, before + 501n);
  });

  await t.test('a hold id of 128 characters expires: derived ids are not refused for their length', async (t) => {
    for (const length of [122, 128]) {
      const hold = 'h'.repeat(length - 1) + String(length % 10);
      await submit('hold', `{"id":"${hold}","account":"edge-a","amount":"3","ttl_seconds":1}`);
      t.equal((await resultOf(database, hold)).code, 'ok');
      const expired = await resultOf(database, `expire:${hold}`, 30_000);
      t.match(expired, { type: 'expire', code: 'ok' }, `expire:<${length} characters> recorded`);
    }
  });
});

t.test('5. wrong types are named as wrong, not as missing', async (t) => {
  const cases = wrongTypeCases('edge-a');
  for (const [type, json, message] of cases) {
    const [result] = await resultsOfJob(await submit(type, json));
    t.match(result, { code: 'invalid_command', message }, `${type} ${json}`);
  }
});

t.test('6. the client and the CLI refuse an id the worker would refuse, before enqueueing', async (t) => {
  const jobsBefore = await database.query<{ n: bigint }>('select count(*) as n from graphile_worker.jobs');
  const billing = createBillingClient({ connectionString: database.url, timeoutMs: 0 });
  try {
    for (const id of ['', 'job:1', 'expire:x', 'x'.repeat(129), 'nul\u0000']) {
      await t.rejects(
        billing.credit({ id, account: 'edge-a', amount: 1n }),
        TypeError,
        `client id ${JSON.stringify(id)}`,
      );
    }
  } finally {
    await billing.close();
  }
  for (const [id, refusal] of [
    ['', /id must not be empty/],
    ['job:3', /id must not start with "job:"/],
  ] as const) {
    // With --timeout 1, a CLI that enqueued would say the command "may still be applied later".
    const cli = await runCli(['credit', 'edge-a', '1', '--id', id, '--timeout', '1'], { DATABASE_URL: database.url });
    t.equal(cli.code, 1, `billing credit --id ${JSON.stringify(id)}: ${cli.stderr.trim()}`);
    t.match(cli.stderr, refusal, 'refused for its id, not timed out');
  }
  const jobsAfter = await database.query<{ n: bigint }>('select count(*) as n from graphile_worker.jobs');
  t.equal(jobsAfter.rows[0]!.n, jobsBefore.rows[0]!.n, 'nothing was enqueued');
});

t.test('7. billing watch escapes control characters: no forged lines', async (t) => {
  const { rows } = await database.query<{ seq: bigint }>('select coalesce(max(seq), 0) as seq from billing.operations');
  const forged = 'x\n#999  credit  fake  applied ok  edge-a=1000000\u001b[31m';
  await submit('credit', JSON.stringify({ id: forged, account: 'edge-a', amount: '1' }));
  await resultOf(database, forged);
  const watch = await runCli(['watch', '--after', String(rows[0]!.seq), '--count', '1'], {
    DATABASE_URL: database.url,
  });
  t.equal(watch.code, 0, watch.stderr);
  const lines = watch.stdout.split('\n').filter(Boolean);
  t.equal(lines.length, 1, 'one result, one line');
  // eslint-disable-next-line no-control-regex -- the test looks for the escape character itself
  t.notMatch(watch.stdout, /\u001b/, 'no escape character reaches the terminal');
  t.match(
    lines[0],
    /x\\u000a#999 {2}credit {2}fake {2}applied ok {2}edge-a=1000000\\u001b\[31m/,
    'the id shown escaped',
  );
  const json = await runCli(['watch', '--after', String(rows[0]!.seq), '--count', '1', '--json'], {
    DATABASE_URL: database.url,
  });
  t.equal(JSON.parse(json.stdout).id, forged, '--json keeps the id exact (JSON escapes it)');
});

t.test('7b. what a terminal would not show as itself is escaped: ids that differ never print alike', async (t) => {
  const { rows } = await database.query<{ seq: bigint }>('select coalesce(max(seq), 0) as seq from billing.operations');
  // Zero-width space, BOM, Hangul filler, a tag character, a no-break space: each invisible, or a space lookalike.
  const twins = ['twin', 'twin\u200b', 'twin\ufeff', 'twin\u3164', 'twin\u{e0041}', 'twin\u00a0'];
  for (const id of twins) {
    await submit('credit', JSON.stringify({ id, account: 'edge-a', amount: '1' }));
    await resultOf(database, id);
  }
  const watch = await runCli(['watch', '--after', String(rows[0]!.seq), '--count', String(twins.length)], {
    DATABASE_URL: database.url,
  });
  t.equal(watch.code, 0, watch.stderr);
  const shownIds = watch.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split('  ')[2]);
  t.same(
    shownIds.sort(),
    ['twin', 'twin\\u00a0', 'twin\\u200b', 'twin\\u3164', 'twin\\u{e0041}', 'twin\\ufeff'].sort(),
    'each id shown with its invisible character escaped',
  );

  const escape = '\u001b[31m';
  const result = await runCli(['result', `nothing${escape}`], { DATABASE_URL: database.url });
  t.equal(result.code, 3, result.stderr);
  t.notOk(result.stderr.includes('\u001b'), 'billing result: no escape character reaches the terminal');
  t.match(result.stderr, 'no result for command nothing\\u001b[31m:');
  const balance = await runCli(['balance', `nobody${escape}`], { DATABASE_URL: database.url });
  t.equal(balance.code, 2, balance.stderr);
  t.notOk(balance.stdout.includes('\u001b'), 'billing balance: no escape character reaches the terminal');
  t.match(balance.stdout, /^nobody\\u001b\[31m +- +no such account$/m);
});

t.test('7c. results({ batchSize }) refuses what is not a whole number of at least 1, at the call', async (t) => {
  const reader = createBillingClient({ connectionString: database.url });
  t.teardown(() => reader.close());
  for (const batchSize of [0, -1, 1.5, Number.NaN, Infinity])
    t.throws(() => reader.results({ batchSize }), RangeError, `batchSize ${batchSize}`);
  const stop = new AbortController();
  for await (const result of reader.results({ batchSize: 1, signal: stop.signal })) {
    t.ok(result.seq > 0n, 'batchSize 1 reads');
    stop.abort();
  }
});

// Last: it leaves a hold stuck on purpose, then releases it.
t.test('8. billing verify sees stuck money', async (t) => {
  await drained(database);
  t.ok((await verifyLedger(database.db)).ok, 'verify passes before');
  // A hold whose expiry job is gone (as the 128-character hold's was on 8bf903f): money held for good.
  const expiresAt = new Date(Date.now() + 2_000).toISOString();
  await submit('hold', `{"id":"stuck-h","account":"edge-a","amount":"4","expires_at":"${expiresAt}"}`);
  t.equal((await resultOf(database, 'stuck-h')).code, 'ok');
  await database.query("select graphile_worker.remove_job('expire:stuck-h')");
  // With its job gone and no worker running (every worker's expiry sweeper would release it), the
  // hold stays active past its expiry: money held for good, which verify must see.
  await worker.stop();
  const report = await waitFor(
    'verify reports the stuck hold',
    async () => {
      const r = await verifyLedger(database.db);
      return r.ok ? undefined : r;
    },
    30_000,
  );
  const stuck = report.checks.find((c) => c.name.startsWith('no active hold'));
  t.match(stuck, { severity: 'breach', violations: 1, examples: [/^hold stuck-h of edge-a: 4 held/] });
  const cli = await runCli(['verify'], { DATABASE_URL: database.url });
  t.equal(cli.code, 1, 'billing verify exits 1');
  t.match(cli.stdout, /BREACH +no active hold more than 5 s past its expiry \(1\)/);

  // The way out for an operator: a worker (its sweeper expires the hold), and the expiry job again.
  worker = await startTestWorker(database);
  await database.query(
    `select graphile_worker.add_job('billing/expire_hold', json_build_object('hold', 'stuck-h'), job_key => 'expire:stuck-h')`,
  );
  t.equal((await resultOf(database, 'expire:stuck-h')).code, 'ok');
  t.ok((await verifyLedger(database.db)).ok, 'expired: verify passes again');

  // An expiry job that keeps failing (its attempts recorded as graphile-worker records them).
  const { rows } = await database.query<{ id: bigint }>(
    "select (graphile_worker.add_job('billing/expire_hold', '{\"hold\":\"ghost\"}'::json, run_at => now() + interval '1 hour')).id",
  );
  await database.query(
    "update graphile_worker._private_jobs set attempts = 3, last_error = 'simulated failure' where id = $1",
    [rows[0]!.id],
  );
  const failing = await verifyLedger(database.db);
  t.notOk(failing.ok);
  t.match(
    failing.checks.find((c) => c.name === 'no expiry job failing or failed'),
    { severity: 'breach', violations: 1, examples: [/simulated failure/] },
  );
  await database.query('delete from graphile_worker._private_jobs where id = $1', [rows[0]!.id]);
  t.ok((await verifyLedger(database.db)).ok);
});
