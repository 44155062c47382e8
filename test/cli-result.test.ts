// The CLI's answers for scripts: `billing result` (a lookup that enqueues nothing), replays marked
// as such, errors as JSON with --json, settings refused by name, --version, an old Node told which
// version it needs. Spawned processes and a real `billing worker`, as in cli.test.ts.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { cliOnWorkerDatabase, runCli } from './helpers/cli.ts';

// Some 30 CLI processes and a worker: minutes on a loaded 2-core machine (see cli.test.ts).
t.setTimeout(600_000);
const { database, env, billing } = await cliOnWorkerDatabase(t, 'cli_result');

t.test('a replay is marked as one; billing result looks a result up: exit 0 applied, 2 rejected, 3 none', async (t) => {
  t.equal((await billing('open-account', 'r-a')).code, 0);
  const first = JSON.parse((await billing('credit', 'r-a', '7', '--id', 'r-once', '--json')).stdout) as {
    seq: string;
    replayed: boolean;
  };
  t.equal(first.replayed, false, 'the first one is not a replay');
  const [replay, human] = await Promise.all([
    billing('credit', 'r-a', '7', '--id', 'r-once', '--json'),
    billing('credit', 'r-a', '7', '--id', 'r-once'),
  ]);
  t.equal(replay.code, 0);
  t.match(
    JSON.parse(replay.stdout),
    { seq: first.seq, replayed: true },
    'the original result, not a new one, marked as a replay',
  );
  t.match(
    human.stdout,
    new RegExp(`^#${first.seq} .*\\(replayed: the result stored \\S+ for this id; nothing applied again\\)\\n$`),
  );

  const jobs = async () =>
    Number((await database.query<{ n: bigint }>('select count(*) as n from graphile_worker.jobs')).rows[0]!.n);
  await billing('debit', 'r-a', '100000', '--id', 'r-too-much');
  const before = await jobs();
  const [applied, rejected, missing] = await Promise.all([
    billing('result', 'r-once', '--json'),
    billing('result', 'r-too-much'),
    billing('result', 'r-never', '--json'),
  ]);
  t.equal(applied.code, 0, 'result: exit 0 for an applied one');
  t.match(JSON.parse(applied.stdout), { id: 'r-once', seq: first.seq, status: 'applied' });
  t.equal(rejected.code, 2, 'result: exit 2 for a rejected one');
  t.match(rejected.stdout, /rejected insufficient_funds/);
  t.equal(missing.code, 3, 'result: exit 3 when there is none');
  t.same(JSON.parse(missing.stdout), { id: 'r-never', found: false });
  t.equal(await jobs(), before, 'looking results up enqueued nothing');
});

t.test('bad usage exits 1 before anything is enqueued; with --json the error is JSON', async (t) => {
  const jobs = async () =>
    Number((await database.query<{ n: bigint }>('select count(*) as n from graphile_worker.jobs')).rows[0]!.n);
  const before = await jobs();
  const cases = [
    ['credit', 'r-a', '1.5'],
    ['credit', 'r-a', '-3'],
    ['credit', 'r-a', '5', '--metadata', '[1]'],
    ['transfer', 'x'],
    ['nonsense'],
    ['hold', 'r-a', '5', '--expires-at', '2030-01-01T12:00:00'],
    ['hold', 'r-a', '5', '--expires-at', '2030-01-01 12:00'],
  ];
  const runs = await Promise.all(cases.map((args) => billing(...args)));
  const jsonRuns = await Promise.all(cases.map((args) => billing(...args, '--json')));
  for (const [index, args] of cases.entries()) {
    t.equal(runs[index]!.code, 1, args.join(' '));
    t.not(runs[index]!.stderr, '', 'says why');
    const json = jsonRuns[index]!;
    t.equal(json.code, 1);
    t.equal(json.stdout, '');
    t.match(JSON.parse(json.stderr), { error: /\S/, exit_code: 1 }, `${args.join(' ')} --json: one JSON line`);
  }
  t.match(
    runs[5]!.stderr,
    /with a time zone, e.g. 2030-01-01T12:00:00Z/,
    'a timestamp without a zone is refused, as the worker refuses it in SQL',
  );
  t.equal(await jobs(), before, 'nothing was enqueued');
});

t.test('a bad setting is refused by name, before anything runs (test/config.test.ts has every setting)', async (t) => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [
      ['balance', 'cli-a'],
      { DATABASE_URL: 'not a url' },
      /^billing: DATABASE_URL must be a URL like postgres:\/\/user:password@host:5432\/database, got "not a url"\n$/,
    ],
    [
      ['worker'],
      { LOG_LEVEL: 'verbose' },
      /^billing: LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"\n$/,
    ],
  ];
  const runs = await Promise.all(cases.map(([args, settings]) => runCli(args, { ...env, ...settings })));
  for (const [index, [args, settings, message]] of cases.entries()) {
    t.equal(runs[index]!.code, 1, `${JSON.stringify(settings)} ${args[0]}`);
    t.match(runs[index]!.stderr, message);
  }
});

t.test('--version; an old Node is told which version is needed', async (t) => {
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  const run = await billing('--version');
  t.same([run.code, run.stdout], [0, `${version}\n`], '--version');
  // The machine's system Node, if it is one that cannot strip types (20 here), runs bin/billing.js.
  const oldNode = ['/usr/bin/node', '/usr/local/bin/node'].find(
    (file) =>
      existsSync(file) &&
      !/^v(2[4-9]|[3-9]\d|23\.([6-9]|\d\d)|22\.(1[89]|[2-9]\d))\./.test(
        execFileSync(file, ['--version'], { encoding: 'utf8' }),
      ),
  );
  if (!oldNode) {
    t.comment('no Node older than 22.18 on this machine: the old-Node check is not run');
    return;
  }
  const old = spawnSync(oldNode, [fileURLToPath(new URL('../bin/billing.js', import.meta.url)), '--version'], {
    encoding: 'utf8',
  });
  t.equal(old.status, 1);
  t.match(
    old.stderr,
    /^pg-billing needs Node\.js 22\.18 or newer \(it runs its TypeScript directly\); this is Node\.js v\d+\.\d+\.\d+ /,
  );
  t.notMatch(old.stderr, /ERR_UNKNOWN_FILE_EXTENSION/);
});
