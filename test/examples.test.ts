// Every example of README.md and docs/, run in the order examples/ numbers them, compared with its recorded output
// (examples/<name>.out). The TypeScript client example runs in test/package.test.ts, compiled
// against the packed package as a consumer would. `npm install && npm start` and `npm test` are the
// commands that run this suite; `billing start`/`worker` are test/start.test.ts's.
// Two databases: one for the command line (demo, then the CLI table), one for SQL (the original
// task, the DBA's queries, then the roles), since both open accounts 1 and 2. One worker at a time:
// a process runs one worker (src/worker/runtime.ts keeps the current one).
import pg from 'pg';
import t from 'tap';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { runCli } from './helpers/cli.ts';
import {
  billingArgs,
  checkInDocs,
  compareWithRecorded,
  formatRows,
  readExample,
  sqlStatements,
} from './helpers/examples.ts';
import { startTestWorker } from './helpers/worker.ts';

// About 20 CLI processes, each loading the CLI anew: minutes on a loaded 2-core machine.
t.setTimeout(600_000);
const cliDatabase = await createTestDatabase('examples_cli');
const sqlDatabase = await createTestDatabase('examples_sql');
let worker = await startTestWorker(cliDatabase);
// Roles belong to the whole server and test files run in parallel: the README's login users get
// a suffix of this process's own, and are dropped after.
const users = { app: `app_${process.pid}`, billing_svc: `billing_svc_${process.pid}`, dba_ro: `dba_ro_${process.pid}` };
t.teardown(async () => {
  await worker.stop();
  for (const user of Object.values(users)) await sqlDatabase.query(`drop user if exists ${user}`);
  await cliDatabase.drop();
  await sqlDatabase.drop();
});

async function runShellExample(database: TestDatabase, name: string): Promise<string> {
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

t.test('npx billing demo, twice', async (t) => {
  checkInDocs(t, '01-demo.sh');
  compareWithRecorded(t, '01-demo.sh', await runShellExample(cliDatabase, '01-demo.sh'));
});

t.test('the command-line table, row by row (after the demo)', async (t) => {
  checkInDocs(t, '06-cli.sh');
  compareWithRecorded(t, '06-cli.sh', await runShellExample(cliDatabase, '06-cli.sh'));
});

t.test('then the SQL examples, on a database of their own', async () => {
  await worker.stop();
  worker = await startTestWorker(sqlDatabase);
});

t.test('the original task from SQL alone, statement by statement (autocommit, as psql -f runs it)', async (t) => {
  checkInDocs(t, '02-original-task.sql');
  const output = await runSqlExample((text) => sqlDatabase.query(text), readExample('02-original-task.sql'));
  compareWithRecorded(t, '02-original-task.sql', output);
  t.match(output, /\n1\|666\|0\|666\n2\|111\|0\|111\n/, 'balances 666 and 111');
});

t.test("the DBA's queries, after the original task", async (t) => {
  checkInDocs(t, '03-dba-queries.sql');
  compareWithRecorded(
    t,
    '03-dba-queries.sql',
    await runSqlExample((text) => sqlDatabase.query(text), readExample('03-dba-queries.sql')),
  );
});

t.test('least privilege: the login users, then the application as app', async (t) => {
  checkInDocs(t, '04-security.sql');
  checkInDocs(t, '05-as-app.sql');
  const rename = (text: string) =>
    text.replace(/\b(app|billing_svc|dba_ro)\b(?= login)/g, (name) => users[name as keyof typeof users]);
  compareWithRecorded(
    t,
    '04-security.sql',
    await runSqlExample((text) => sqlDatabase.query(rename(text)), readExample('04-security.sql')),
  );
  const url = new URL(sqlDatabase.url);
  url.username = users.app;
  url.password = '...';
  const app = new pg.Client({ connectionString: url.toString() });
  await app.connect();
  try {
    compareWithRecorded(
      t,
      '05-as-app.sql',
      await runSqlExample((text) => app.query(text), readExample('05-as-app.sql')),
    );
  } finally {
    await app.end();
  }
});
