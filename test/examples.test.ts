// Every example of README.md and docs/, run as one reader would run them: in the order the reader
// meets them (README.md, then each page of docs/ in the order the README lists them), one after
// the other on ONE database with one worker, each output compared with its recorded one
// (examples/<name>.out). examples/ numbers them in that order, and this file checks that it does.
// Any test can run alone or in another order: it first runs the examples before its own (outputOf).
// The TypeScript client example imports the package by its name; here it runs from the sources
// (test/package.test.ts compiles it against the packed package, as a consumer does).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import t from 'tap';
import { createTestDatabase } from './helpers/database.ts';
import { runCli } from './helpers/cli.ts';
import {
  billingArgs,
  checkInDocs,
  compareWithRecorded,
  exampleNames,
  formatRows,
  readExample,
  readerPosition,
  sqlStatements,
} from './helpers/examples.ts';
import { startTestWorker } from './helpers/worker.ts';

// About 20 CLI processes, each loading the CLI anew: minutes on a loaded 2-core machine.
t.setTimeout(600_000);
const database = await createTestDatabase('examples');
const worker = await startTestWorker(database);
// Roles belong to the whole server and test files run in parallel: the README's login users get
// a suffix of this process's own, and are dropped after.
const users = { app: `app_${process.pid}`, billing_svc: `billing_svc_${process.pid}`, dba_ro: `dba_ro_${process.pid}` };
const work = mkdtempSync(path.join(tmpdir(), 'pg-billing-examples-'));
t.teardown(async () => {
  await worker.stop();
  for (const user of Object.values(users)) await database.query(`drop user if exists ${user}`);
  await database.drop();
  rmSync(work, { recursive: true, force: true });
});

async function runShellExample(name: string): Promise<string> {
  const out: string[] = [];
  for (const line of readExample(name)
    .split('\n')
    .filter((l) => l.trim() !== '')) {
    const run = await runCli(billingArgs(line), { DATABASE_URL: database.url, LOG_LEVEL: 'warn' });
    out.push(`$ ${line.replace(/\s*#.*$/, '')}`, run.stdout.trimEnd());
    if (run.code !== 0) out.push(`[exit ${run.code}] ${run.stderr.trim()}`);
  }
  return `${out.filter((l) => l !== '').join('\n')}\n`;
}

async function runSqlExample(query: (text: string) => Promise<pg.QueryResult>, script: string): Promise<string> {
  const out: string[] = [];
  for (const statement of sqlStatements(script)) {
    const result = await query(statement);
    out.push(`> ${statement.split('\n')[0]}`);
    // billing.submit returns the job id: masked, like every job id.
    const rows = result.rows.map((row: Record<string, unknown>) =>
      'submit' in row ? { ...row, submit: '<job>' } : row,
    );
    out.push(
      result.fields.length > 0
        ? formatRows(
            result.fields.map((f) => f.name),
            rows,
          )
        : result.command,
    );
  }
  return `${out.join('\n')}\n`;
}

/** The TypeScript example with `pg-billing` resolved to src/index.ts, run by Node's type stripping. */
async function runClientExample(name: string): Promise<string> {
  const source = new URL('../src/index.ts', import.meta.url).href;
  const file = path.join(work, name);
  writeFileSync(file, readExample(name).replace(/from 'pg-billing'/g, `from '${source}'`));
  const { stdout } = await promisify(execFile)(process.execPath, [file], {
    env: { ...process.env, DATABASE_URL: database.url },
    timeout: 120_000,
  });
  return stdout;
}

const rename = (text: string) =>
  text.replace(/\b(app|billing_svc|dba_ro)\b(?= login)/g, (name) => users[name as keyof typeof users]);

/** The application's own session, as the login user 07-security.sql made. */
async function runAsApp(name: string): Promise<string> {
  const url = new URL(database.url);
  url.username = users.app;
  url.password = '...';
  const app = new pg.Client({ connectionString: url.toString() });
  await app.connect();
  try {
    return await runSqlExample((text) => app.query(text), readExample(name));
  } finally {
    await app.end();
  }
}

/** How each example runs. */
const runners: Record<string, () => Promise<string>> = {
  '01-demo.sh': () => runShellExample('01-demo.sh'),
  '02-original-task.sql': () => runSqlExample((text) => database.query(text), readExample('02-original-task.sql')),
  '03-moves.sh': () => runShellExample('03-moves.sh'),
  '04-cli.sh': () => runShellExample('04-cli.sh'),
  '05-client.ts': () => runClientExample('05-client.ts'),
  '06-dba-queries.sql': () => runSqlExample((text) => database.query(text), readExample('06-dba-queries.sql')),
  '07-security.sql': () => runSqlExample((text) => database.query(rename(text)), readExample('07-security.sql')),
  '08-as-app.sql': () => runAsApp('08-as-app.sql'),
};

const outputs = new Map<string, Promise<string>>();
/**
 * An example's output. The examples run on the one database in the order a reader meets them,
 * each once, whichever test asks first: each reads what the ones before it left (the demo's
 * accounts, the login users), so a test run alone (`--grep`) or in another order first runs the
 * examples before its own, and compares only its own.
 */
function outputOf(name: string): Promise<string> {
  let output = outputs.get(name);
  if (!output) {
    const names = exampleNames();
    const before = names[names.indexOf(name) - 1];
    // An earlier example that failed is its own test's failure; this one runs after it anyway.
    const ready = before === undefined ? Promise.resolve() : outputOf(before).then(noop, noop);
    output = ready.then(() => runners[name]!());
    outputs.set(name, output);
  }
  return output;
}
const noop = () => {};

t.test('examples/ numbers the examples in the order a reader meets them, and each has its runner', async (t) => {
  const names = exampleNames();
  const byReader = [...names].sort((a, b) => {
    const [pageA, offsetA] = readerPosition(a);
    const [pageB, offsetB] = readerPosition(b);
    return pageA - pageB || offsetA - offsetB;
  });
  t.same(names, byReader, "README.md first, then docs/ in the README's order, each page top to bottom");
  t.same(Object.keys(runners), names);
});

t.test('README: npx billing demo, twice', async (t) => {
  checkInDocs(t, '01-demo.sh');
  compareWithRecorded(t, '01-demo.sh', await outputOf('01-demo.sh'));
});

t.test('README: the original task from SQL alone, after the demo (autocommit, as psql -f runs it)', async (t) => {
  checkInDocs(t, '02-original-task.sql');
  const output = await outputOf('02-original-task.sql');
  compareWithRecorded(t, '02-original-task.sql', output);
  // What the example's comment says it prints.
  t.match(output, /\nsql-1\|666\|0\|666\nsql-2\|111\|0\|111\n/, 'balances 666 and 111');
});

t.test('docs/commands.md: a payment with its fee as one transaction, then its refund', async (t) => {
  checkInDocs(t, '03-moves.sh');
  const output = await outputOf('03-moves.sh');
  compareWithRecorded(t, '03-moves.sh', output);
  t.match(output, /\nbuyer +USD +1000 +0 +1000\nshop +USD +0 +0 +0\nfees +USD +0 +0 +0\n/, 'all back where it was');
});

t.test('docs/cli.md: the command-line table, row by row', async (t) => {
  checkInDocs(t, '04-cli.sh');
  compareWithRecorded(t, '04-cli.sh', await outputOf('04-cli.sh'));
});

t.test('docs/client.md: the TypeScript client', async (t) => {
  checkInDocs(t, '05-client.ts');
  const output = await outputOf('05-client.ts');
  compareWithRecorded(t, '05-client.ts', output);
  t.match(output, /\n666n\n\[ 'open_account ok', 'transfer ok' \]\n$/, 'as its comments say');
});

t.test("docs/dba.md: the DBA's queries", async (t) => {
  checkInDocs(t, '06-dba-queries.sql');
  compareWithRecorded(t, '06-dba-queries.sql', await outputOf('06-dba-queries.sql'));
});

t.test('docs/security.md: the login users', async (t) => {
  checkInDocs(t, '07-security.sql');
  compareWithRecorded(t, '07-security.sql', await outputOf('07-security.sql'));
});

t.test('docs/security.md: the application as app', async (t) => {
  checkInDocs(t, '08-as-app.sql');
  compareWithRecorded(t, '08-as-app.sql', await outputOf('08-as-app.sql'));
});
