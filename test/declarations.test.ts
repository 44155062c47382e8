// The command declarations (src/commands/<type>.ts) against what is written of them elsewhere, with
// no database: the docs' table of commands and codes, the closed list of result codes, the
// task files of tasks/billing/ the worker loads, and each command's examples file.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { clientCommands, declarations, taskNames } from '../src/commands/command.ts';
import { resultCodes } from '../src/commands/contract.ts';
import { commandTaskFolder, loadCommandTaskFactories, TaskFolderError } from '../src/worker/task-folder.ts';

const commandsDoc = readFileSync(new URL('../docs/commands.md', import.meta.url), 'utf8');

/** The rows of the docs' command table: the command and its codes besides `ok`, as written. */
function documentedCommands(): { command: string; codes: string[] }[] {
  const table = commandsDoc.slice(commandsDoc.indexOf('| command | payload | effect | result codes besides `ok` |'));
  const rows = table.split('\n').slice(2);
  const documented: { command: string; codes: string[] }[] = [];
  for (const row of rows) {
    if (!row.startsWith('|')) break;
    const cells = row.split('|').map((cell) => cell.trim());
    documented.push({ command: cells[1]!, codes: [...cells[4]!.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!) });
  }
  return documented;
}

t.test("docs/commands.md lists every command a client sends, with its codes in the declaration's order", async (t) => {
  t.same(
    documentedCommands(),
    clientCommands.map((declaration) => ({ command: declaration.type, codes: [...declaration.codes] })),
  );
});

t.test('each declaration lists distinct rejection codes of the closed list', async (t) => {
  for (const { type, codes } of declarations) {
    t.same([...new Set(codes)], codes, `${type}: no code twice`);
    for (const code of codes) {
      t.ok((resultCodes as readonly string[]).includes(code), `${type}: ${code} is a result code`);
      // These three any command can end with: they are not the rule's to list.
      t.notOk(['ok', 'invalid_command', 'id_conflict'].includes(code), `${type}: ${code} is a rule's code`);
    }
  }
});

t.test('declarations are one per type, one per task', async (t) => {
  t.equal(new Set(declarations.map((d) => d.type)).size, declarations.length);
  t.equal(new Set(declarations.map((d) => d.task)).size, declarations.length);
});

t.test('tasks/billing/ has one task file per declared task, each the factory of its own task', async (t) => {
  const factories = await loadCommandTaskFactories();
  t.same([...factories.keys()].sort(), [...taskNames].sort());
  for (const [name, factory] of factories) t.equal(`billing/${factory.task}`, name, `${name}: its own factory`);
});

t.test(
  'a task file run as the task itself (a runner pointed at tasks/) fails the job, it does not complete it',
  async (t) => {
    const [credit] = [...(await loadCommandTaskFactories()).values()].filter((factory) => factory.task === 'credit');
    const runAsTask = credit as unknown as (payload: unknown, helpers: unknown) => unknown;
    t.throws(() => runAsTask({ id: 'c1', account: 'a', amount: '1' }, { job: { id: '1' } }), {
      message:
        'tasks/billing/credit.ts exports a factory of the task, not the task: run the jobs with `billing worker`',
    });
  },
);

/** A task folder of its own: `<task>.ts` for each entry, with the given factory call. */
function taskFolder(t: Test, files: Record<string, string>): string {
  const root = mkdtempSync(path.join(tmpdir(), 'pg-billing-tasks-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  writeFileSync(path.join(root, 'package.json'), '{ "type": "module" }\n');
  const factoryModule = new URL('../src/worker/command-task.ts', import.meta.url).href;
  for (const [name, call] of Object.entries(files))
    writeFileSync(
      path.join(root, `${name}.ts`),
      `import { commandTaskFactory } from '${factoryModule}';\nexport default ${call};\n`,
    );
  return root;
}
const everyTask = () =>
  Object.fromEntries(declarations.map(({ task }) => [task as string, `commandTaskFactory('${task}')`]));

t.test('a declared command without its task file stops the loader, naming the file to add', async (t) => {
  const files = everyTask();
  delete files['capture'];
  const folder = taskFolder(t, files);
  await t.rejects(loadCommandTaskFactories(folder), {
    name: 'TaskFolderError',
    message: `the declared command capture has no task file: add ${path.join(folder, 'capture.ts')}`,
  });
  t.equal(
    path.resolve(commandTaskFolder),
    path.resolve(import.meta.dirname, '../tasks/billing'),
    'the default: tasks/billing/',
  );
});

t.test('a task file that names no declared command stops the loader, naming the file', async (t) => {
  const folder = taskFolder(t, { ...everyTask(), refund: "commandTaskFactory('credit')" });
  const error = await loadCommandTaskFactories(folder).catch((error: unknown) => error);
  t.type(error, TaskFolderError);
  t.match((error as Error).message, `${path.join(folder, 'refund.ts')} names no declared command`);
  t.notMatch((error as Error).message, 'has no task file', 'every declared command has its file');
});

t.test("a task file whose factory is another command's stops the loader", async (t) => {
  const folder = taskFolder(t, { ...everyTask(), debit: "commandTaskFactory('credit')" });
  await t.rejects(loadCommandTaskFactories(folder), {
    name: 'TaskFolderError',
    message: `${path.join(folder, 'debit.ts')} must \`export default commandTaskFactory('debit')\``,
  });
});

// Each command's examples, one a code in the order it checks them, are in a file of their own
// beside its module (src/commands/<task>.ts, test/commands/<task>.test.ts), so that a command's
// story reads in one place and a new command is a new file; each file checks its codes against
// the declaration (helpers/command-examples.ts). Here: that no declaration goes without one.
t.test('every declaration has its examples in test/commands/<task>.test.ts', async (t) => {
  const files = readdirSync(new URL('./commands/', import.meta.url)).filter((name) => name.endsWith('.test.ts'));
  t.same(files.sort(), declarations.map((d) => `${d.task}.test.ts`).sort());
  for (const { task } of declarations) {
    const text = readFileSync(new URL(`./commands/${task}.test.ts`, import.meta.url), 'utf8');
    t.match(text, /checkExamples\(t, \w+, \[/, `${task}.test.ts checks its examples against the declaration`);
  }
});
