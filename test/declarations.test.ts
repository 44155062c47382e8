// The command declarations (src/commands/<type>.ts) against what is written of them elsewhere, with
// no database: the docs' table of commands and codes, and the closed list of result codes.
import { readdirSync, readFileSync } from 'node:fs';
import t from 'tap';
import { clientCommands, declarations } from '../src/commands/command.ts';
import { resultCodes } from '../src/commands/contract.ts';

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
