// The `billing` CLI end to end: spawned processes, a real `billing worker` process, real exit codes.
import { readFileSync } from 'node:fs';
import pg from 'pg';
import t from 'tap';
import { resolveServerUrl, withDatabase } from '../src/db/connection.ts';
import { cliOnWorkerDatabase, runCli } from './helpers/cli.ts';

// About 60 CLI processes, each a Node start: minutes on a loaded 2-core machine, so more than the
// default per-file limit (.taprc). The tests themselves wait on exits and output, never on time.
t.setTimeout(600_000);
const { database, billing } = await cliOnWorkerDatabase(t, 'cli');
const balanceOf = async (account: string) =>
  (await database.query<{ balance: bigint }>('select balance from billing.accounts where account = $1', [account]))
    .rows[0]?.balance;

t.test('migrate: applies every migration to an empty database, then has nothing to do', async (t) => {
  const serverUrl = await resolveServerUrl();
  const name = `pgbilling_t_cli_migrate_${process.pid}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${name} with (force)`);
  await admin.query(`create database ${name}`);
  t.teardown(async () => {
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
  });
  const url = withDatabase(serverUrl, name);
  // A worker on a database that was never migrated: says so once, creates nothing, exit 1.
  const unmigrated = await runCli(['worker'], { DATABASE_URL: url, BILLING_HTTP_PORT: '0' });
  t.equal(unmigrated.code, 1);
  t.match(
    unmigrated.stderr,
    /^billing: not migrated: run billing migrate \(no graphile_worker schema in database "[^"]+"\)\n$/,
  );
  t.equal(unmigrated.stdout, '', 'no "worker started", no stack');
  const probe = new pg.Client({ connectionString: url });
  await probe.connect();
  const created = (
    await probe.query("select nspname from pg_namespace where nspname in ('graphile_worker', 'billing')")
  ).rows;
  await probe.end();
  t.same(created, [], 'no schema was created');

  const first = await runCli(['migrate'], { DATABASE_URL: url });
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, /applied 0001_ledger/);
  t.match(first.stdout, /applied 0003_submit/);
  t.equal(
    first.stdout.split('applied 0001_ledger').length + first.stderr.split('applied 0001_ledger').length,
    3,
    'each migration printed once',
  );
  const again = await runCli(['migrate'], { DATABASE_URL: url });
  t.equal(again.code, 0);
  t.match(again.stdout, /up to date/);

  // No worker runs on this database: a command times out, says it may still apply and how to look
  // it up without sending it again, exits 1; `billing result` then finds none (exit 3).
  const [late, lateJson] = await Promise.all([
    runCli(['credit', 'lonely', '5', '--timeout', '300'], { DATABASE_URL: url }),
    runCli(['credit', 'lonely', '5', '--timeout', '300', '--id', 'late-1', '--json'], { DATABASE_URL: url }),
  ]);
  t.equal(late.code, 1);
  t.match(
    late.stderr,
    /no result for command .* after 300 ms: it is enqueued and may still be applied later .*billing result \S+\n$/,
  );
  t.equal(lateJson.code, 1);
  t.equal(lateJson.stdout, '');
  t.match(
    JSON.parse(lateJson.stderr),
    { error: /no result for command late-1/, exit_code: 1, id: 'late-1', job_id: /^\d+$/ },
    'with --json the error is JSON',
  );
  const none = await runCli(['result', 'late-1'], { DATABASE_URL: url });
  t.equal(none.code, 3, 'no result stored: exit 3');
  t.match(none.stderr, /no result for command late-1: not applied yet/);
});

t.test(
  'demo: the original task, four results and balances 666 and 111; a second run uses fresh accounts',
  async (t) => {
    const first = await billing('demo');
    t.equal(first.code, 0, first.stderr);
    t.match(first.stdout, /accounts 1 and 2\n/);
    const resultLines = first.stdout.split('\n').filter((line) => /^\d\. /.test(line));
    t.equal(resultLines.length, 4);
    t.ok(
      resultLines.every((line) => line.includes('applied ok')),
      resultLines.join('\n'),
    );
    t.match(first.stdout, /1=666 2=111/);
    t.match(first.stdout, /balances: 1 = 666, 2 = 111/);
    t.equal(await balanceOf('1'), 666n);
    t.equal(await balanceOf('2'), 111n);

    const second = await billing('demo', '--json');
    t.equal(second.code, 0, second.stderr);
    const report = JSON.parse(second.stdout) as {
      accounts: string[];
      results: { status: string }[];
      balances: Record<string, string>;
    };
    t.same(report.accounts, ['3', '4'], 'accounts 1 and 2 exist: the next free pair');
    t.same(
      report.results.map((r) => r.status),
      ['applied', 'applied', 'applied', 'applied'],
    );
    t.same(report.balances, { 3: '666', 4: '111' });
    t.equal(await balanceOf('1'), 666n, 'the first run is left alone');

    const third = await billing('demo');
    t.match(third.stdout, /accounts 1 and 2 exist already .* uses accounts 5 and 6/);
  },
);

t.test('each command: exit 0 when applied, 2 when rejected, --json parses', async (t) => {
  // Rounds of commands whose outcome does not depend on their order within the round.
  const rounds: [string[], number, string][][] = [
    [
      [['open-account', 'cli-a'], 0, 'ok'],
      [['open-account', 'cli-b', '--currency', 'USD'], 0, 'ok'],
    ],
    [
      [['open-account', 'cli-a'], 2, 'account_exists'],
      [['credit', 'cli-a', '100', '--metadata', '{"source":"test"}'], 0, 'ok'],
    ],
    [
      [['debit', 'cli-a', '1000'], 2, 'insufficient_funds'],
      [['debit', 'cli-a', '10'], 0, 'ok'],
      [['transfer', 'cli-a', 'cli-b', '20'], 0, 'ok'],
      [['hold', 'cli-a', '30', '--hold', 'cli-h1'], 0, 'ok'],
    ],
    [
      [['capture', 'cli-h1', '5', '--to', 'cli-b'], 0, 'ok'],
      [['hold', 'cli-a', '10', '--hold', 'cli-h2', '--ttl', '600'], 0, 'ok'],
    ],
    [
      [['release', 'cli-h1'], 2, 'hold_closed'],
      [['release', 'cli-h2'], 0, 'ok'],
    ],
  ];
  for (const round of rounds) {
    const runs = await Promise.all(round.map(([args]) => billing(...args, '--json')));
    for (const [index, [args, expectedCode, expectedResult]] of round.entries()) {
      const run = runs[index]!;
      t.equal(run.code, expectedCode, `${args.join(' ')}: exit ${expectedCode} ${run.stderr}`);
      const result = JSON.parse(run.stdout) as { code: string; status: string; seq: string };
      t.equal(result.code, expectedResult, args.join(' '));
      t.equal(result.status, expectedCode === 0 ? 'applied' : 'rejected');
      t.match(result.seq, /^\d+$/, 'seq is a string of digits');
    }
  }
  t.equal(await balanceOf('cli-a'), 65n, '100 - 10 - 20 - 5 captured');
  t.equal(await balanceOf('cli-b'), 25n);

  const human = await billing('credit', 'cli-a', '1');
  t.equal(human.code, 0);
  t.match(human.stdout, /^#\d+ {2}credit {2}\S+ {2}applied ok {2}cli-a=66\n$/);
});

t.test('the policy commands: set-limits, freeze, unfreeze, close-account; balance shows the policy', async (t) => {
  const rounds: [string[], number, string][][] = [
    [
      [['open-account', 'cli-p1'], 0, 'ok'],
      [['open-account', 'cli-p2'], 0, 'ok'],
    ],
    [
      [['set-limits', 'cli-p1', '--overdraft-limit', '10', '--max-balance', '100'], 0, 'ok'],
      [['freeze', 'cli-p2'], 0, 'ok'],
    ],
    [
      [['debit', 'cli-p1', '10'], 0, 'ok'],
      [['debit', 'cli-p2', '1'], 2, 'account_frozen'],
    ],
    [
      [['set-limits', 'cli-p1', '--max-balance', 'none'], 0, 'ok'],
      [['unfreeze', 'cli-p2'], 0, 'ok'],
    ],
    [
      [['close-account', 'cli-p1'], 2, 'account_not_empty'],
      [['close-account', 'cli-p2'], 0, 'ok'],
    ],
    [
      [['set-limits', 'cli-p1', '--overdraft-limit', '5'], 2, 'limit_below_usage'],
      [['freeze', 'cli-p2'], 2, 'account_closed'],
    ],
  ];
  for (const round of rounds) {
    const runs = await Promise.all(round.map(([args]) => billing(...args, '--json')));
    for (const [index, [args, expectedCode, expectedResult]] of round.entries()) {
      t.equal(runs[index]!.code, expectedCode, `${args.join(' ')}: exit ${expectedCode} ${runs[index]!.stderr}`);
      t.equal((JSON.parse(runs[index]!.stdout) as { code: string }).code, expectedResult, args.join(' '));
    }
  }
  const shown = await billing('balance', 'cli-p1', 'cli-p2');
  t.match(shown.stdout, /^cli-p1\s+USD\s+-10\s+0\s+-10\s+overdraft 10$/m);
  t.match(shown.stdout, /^cli-p2\s+USD\s+0\s+0\s+0\s+closed$/m);
  const json = JSON.parse((await billing('balance', 'cli-p1', '--json')).stdout) as Record<string, unknown>;
  t.same([json.overdraft_limit, json.max_balance, json.status], ['10', null, 'open']);
  const bad = await billing('set-limits', 'cli-p1', '--max-balance', 'lots');
  t.equal(bad.code, 1, 'a ceiling that is neither digits nor none');
  t.match(bad.stderr, /or none/);
});

t.test('the same id: a replay reports the first result again, another payload is id_conflict', async (t) => {
  const first = JSON.parse((await billing('credit', 'cli-b', '7', '--id', 'cli-once', '--json')).stdout) as {
    seq: string;
    replayed: boolean;
  };
  t.equal(first.replayed, false, 'the first call applied it');
  const replay = await billing('credit', 'cli-b', '7', '--id', 'cli-once', '--json');
  t.equal(replay.code, 0);
  t.equal((JSON.parse(replay.stdout) as { seq: string }).seq, first.seq, 'the original result, not a new one');
  t.equal((JSON.parse(replay.stdout) as { replayed: boolean }).replayed, true, 'marked as a replay');
  t.match((await billing('credit', 'cli-b', '7', '--id', 'cli-once')).stdout, /\(replayed: the result stored /);
  const conflict = await billing('credit', 'cli-b', '8', '--id', 'cli-once', '--json');
  t.equal(conflict.code, 2);
  t.equal((JSON.parse(conflict.stdout) as { code: string }).code, 'id_conflict');
  t.equal(await balanceOf('cli-b'), 32n, 'applied once');
});

t.test('bad usage exits 1 before anything is enqueued', async (t) => {
  const cases = [
    ['credit', 'cli-a', '1.5'],
    ['credit', 'cli-a', '-3'],
    ['credit', 'cli-a', '5', '--metadata', '[1]'],
    ['transfer', 'x'],
    ['nonsense'],
  ];
  const runs = await Promise.all(cases.map((args) => billing(...args)));
  for (const [index, args] of cases.entries()) {
    t.equal(runs[index]!.code, 1, args.join(' '));
    t.not(runs[index]!.stderr, '', 'says why');
  }
});

t.test('balance: 0 when all exist, 2 when one is missing; --json', async (t) => {
  const both = await billing('balance', '1', '2');
  t.equal(both.code, 0);
  t.match(both.stdout, /^1\s+USD\s+666\s+0\s+666$/m);
  const missing = await billing('balance', '1', 'nobody', '--json');
  t.equal(missing.code, 2);
  const lines = missing.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  t.same(
    lines.map((l) => [l.account, l.exists, l.balance]),
    [
      ['1', true, '666'],
      ['nobody', false, undefined],
    ],
  );
});

t.test('watch: results in seq order from a cursor, as JSON lines', async (t) => {
  const run = await billing('watch', '--after', '0', '--count', '6', '--json');
  t.equal(run.code, 0, run.stderr);
  const results = run.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { seq: string; type: string });
  t.same(
    results.map((r) => r.seq),
    ['1', '2', '3', '4', '5', '6'],
  );
  t.same(
    results.slice(0, 4).map((r) => r.type),
    ['open_account', 'open_account', 'credit', 'transfer'],
  );
  const later = await billing('watch', '--after', '2', '--count', '1', '--json');
  t.equal((JSON.parse(later.stdout) as { seq: string }).seq, '3');
});

t.test('verify: exit 0 on a clean ledger, 1 after a balance is changed behind the journal', async (t) => {
  const clean = await billing('verify');
  t.equal(clean.code, 0, clean.stdout);
  t.match(clean.stdout, /verify: ok/);
  t.notMatch(clean.stdout, /BREACH/);
  await database.query("update billing.accounts set balance = balance + 1 where account = '2'");
  const tampered = await billing('verify');
  t.equal(tampered.code, 1);
  t.match(tampered.stdout, /BREACH\s+journal ends at the account row \(1\)/);
  t.match(tampered.stdout, /2: row 112\/0, journal 111\/0/);
  const json = await billing('verify', '--json');
  t.equal(json.code, 1);
  t.equal((JSON.parse(json.stdout) as { ok: boolean }).ok, false);
  await database.query("update billing.accounts set balance = balance - 1 where account = '2'");
  t.equal((await billing('verify')).code, 0);
});

t.test(
  '--help answers on every command, with examples; the top level documents exit codes and DATABASE_URL',
  async (t) => {
    const top = await billing('--help');
    t.equal(top.code, 0);
    for (const text of [
      'Exit codes:',
      'DATABASE_URL',
      'BILLING_DATA_DIR',
      'demo',
      'watch',
      'verify',
      'bench',
      'chaos',
      'result',
      '--version',
    ])
      t.match(top.stdout, text);
    for (const code of [0, 1, 2, 3, 70])
      t.match(top.stdout, new RegExp(`^  ${code} +\\S`, 'm'), `exit code ${code} is documented`);
    // "More settings" points to the page that has them all.
    t.match(top.stdout.replace(/\s+/g, ' '), 'every setting is in docs/configuration.md');
    const settings = readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8');
    for (const name of ['DATABASE_URL', 'BILLING_DATA_DIR', 'BILLING_HTTP_PORT', 'LOG_LEVEL', 'BILLING_CONCURRENCY'])
      t.match(settings, `| \`${name}\` |`, `docs/configuration.md has ${name}`);
    const subcommands = [
      'start',
      'migrate',
      'worker',
      'open-account',
      'credit',
      'debit',
      'transfer',
      'hold',
      'capture',
      'release',
      'set-limits',
      'freeze',
      'unfreeze',
      'close-account',
      'result',
      'balance',
      'watch',
      'verify',
      'demo',
      'history',
      'url',
    ];
    const helps = await Promise.all(subcommands.map((name) => billing(name, '--help')));
    for (const [index, help] of helps.entries()) {
      t.equal(help.code, 0, `${subcommands[index]} --help`);
      t.match(help.stdout, new RegExp(`^Usage: billing ${subcommands[index]}`));
      t.match(help.stdout, /Examples:\n {2}\$ /);
      t.match(help.stdout, /DATABASE_URL/);
    }
    const hold = helps[subcommands.indexOf('hold')]!.stdout.replace(/\s+/g, ' ');
    t.match(hold, /--ttl <seconds> .*at most 30 days/);
    t.match(hold, /--expires-at <timestamp> .*with a zone, at most 30 days ahead/);
    const setLimits = helps[subcommands.indexOf('set-limits')]!.stdout.replace(/\s+/g, ' ');
    t.match(setLimits, /--max-balance <units> .*or none to remove it/);
  },
);

t.test('history: the newest page by default, --oldest and --after forward, --before back', async (t) => {
  for (const amount of ['1', '2', '3', '4']) t.equal((await billing('credit', '1', amount)).code, 0);
  const amounts = (run: { stdout: string }) =>
    run.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { seq: string; type: string; balances: { balance: string }[] })
      .map((r) => `${r.type} ${r.balances[0]!.balance}`);
  const newest = await billing('history', '1', '--limit', '2', '--json');
  t.equal(newest.code, 0, newest.stderr);
  t.same(amounts(newest), ['credit 672', 'credit 676'], 'the last two results, in seq order');
  const human = await billing('history', '1', '--limit', '2');
  const firstSeq = /^#(\d+)/.exec(human.stdout)![1]!;
  t.match(human.stderr, `earlier results: billing history 1 --before ${firstSeq}\n`);
  t.same(amounts(await billing('history', '1', '--limit', '2', '--before', firstSeq, '--json')), [
    'credit 667',
    'credit 669',
  ]);
  const oldest = await billing('history', '1', '--oldest', '--limit', '2');
  t.match(oldest.stdout, /^#1 {2}open_account .*\n#3 {2}credit /);
  t.match(oldest.stderr, /^next page: billing history 1 --after 3\n$/);
  t.match((await billing('history', '1', '--after', '3', '--limit', '1')).stdout, /^#4 {2}transfer /);
  const both = await billing('history', '1', '--oldest', '--before', '9');
  t.equal(both.code, 1, 'one direction at a time');
});

t.test('bad values of --limit: one clear line, exit 1, with or without --json', async (t) => {
  for (const limit of ['0', '-1', 'x']) {
    const run = await billing('history', 'alice', '--limit', limit);
    t.equal(run.code, 1, `--limit ${limit}`);
    t.equal(run.stdout, '');
    t.match(
      run.stderr,
      `billing: option '--limit <n>' argument '${limit}' is invalid: expected a whole number of 1 or more\n`,
    );
    const json = await billing('history', 'alice', '--limit', limit, '--json');
    t.equal(json.code, 1, `--limit ${limit} --json`);
    t.equal(json.stdout, '');
    t.match(JSON.parse(json.stderr), { error: /argument '.*' is invalid: expected a whole number/, exit_code: 1 });
  }
});

t.test('every error line starts with billing:, usage errors included', async (t) => {
  const cases = [
    ['nonsense'],
    ['transfer', 'x'],
    ['credit', 'cli-a', '1.5'],
    ['history', 'alice', '--after', 'x'],
    ['balance', 'alice', '--bogus'],
  ];
  const runs = await Promise.all(cases.map((args) => billing(...args)));
  for (const [index, args] of cases.entries()) {
    t.equal(runs[index]!.code, 1, args.join(' '));
    t.match(runs[index]!.stderr, /^billing: \S/, `${args.join(' ')}: ${runs[index]!.stderr.split('\n')[0]}`);
    t.notMatch(runs[index]!.stderr, /^error:/m);
  }
});

t.test('url prints the database; --data-dir names the embedded server to find, as on start', async (t) => {
  const url = await billing('url');
  t.equal(url.code, 0, url.stderr);
  t.equal(url.stdout, `${database.url}\n`, 'DATABASE_URL when set');
  const dataDir = `/tmp/pg-billing-no-server-${process.pid}`;
  for (const args of [['url'], ['balance', 'alice'], ['history', 'alice'], ['verify'], ['credit', 'alice', '1']]) {
    const run = await runCli([...args, '--data-dir', dataDir], {
      DATABASE_URL: undefined,
      BILLING_DATA_DIR: undefined,
    });
    t.equal(run.code, 1, `${args.join(' ')} --data-dir`);
    t.match(run.stderr, `no embedded PostgreSQL is running for ${dataDir}.`, 'looked in that folder');
  }
});
