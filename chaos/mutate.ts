// Shows that the chaos run can fail: copies the project to a temp folder, breaks one safeguard in
// the copy (never in the working tree, and with no switch in production code), runs the chaos run
// there and reports whether it caught the breakage.
//   node chaos/mutate.ts <mutation|all> [chaos options...]
// Exit 0 when every mutation was caught (the chaos run failed), 1 when one survived.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface Mutation {
  what: string;
  file: string;
  replace: [string, string][];
}

export const mutations: Record<string, Mutation> = {
  'no-idempotency': {
    what: 'the worker no longer looks up earlier results of a command id before deciding it',
    file: 'src/ledger/plan.ts',
    replace: [['const earlier = seen.get(id);', 'const earlier = undefined as ReturnType<typeof seen.get>;']],
  },
  'no-lock-order': {
    what: 'lock slots are locked in random order instead of one global (ascending) order',
    file: 'src/ledger/batch-sql.ts',
    replace: [[".orderBy('slot')\n        .forUpdate()", '.orderBy(sql`random()`)\n        .forUpdate()']],
  },
  'no-recovery': {
    what: 'the dead-worker reaper is not started',
    file: 'src/worker/queue-runner.ts',
    replace: [['reaperIntervalMs: config.recoveryIntervalMs,', "reaperIntervalMs: 'off',"]],
  },
  'worker-clock': {
    what: "the rules use the worker's clock instead of the database's",
    file: 'src/ledger/apply.ts',
    replace: [
      [
        'const { locked: lockedCount, now } = locked[0]!;',
        'const { locked: lockedCount } = locked[0]!;\n  const now = new Date();',
      ],
    ],
  },
};

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * What no longer applies, one line per search string that is not in its file: a mutation whose
 * code changed would otherwise stop breaking anything while the suite still "catches" it.
 * `npm test` runs this (test/mutations.test.ts).
 */
export function staleMutations(dir = root): string[] {
  const problems: string[] = [];
  for (const [name, mutation] of Object.entries(mutations)) {
    let text: string;
    try {
      text = readFileSync(path.join(dir, mutation.file), 'utf8');
    } catch {
      problems.push(`mutation ${name}: ${mutation.file} does not exist`);
      continue;
    }
    for (const [from] of mutation.replace) {
      if (!text.includes(from))
        problems.push(
          `mutation ${name} (${mutation.what}): "${from}" not found in ${mutation.file}; update the mutation`,
        );
    }
  }
  return problems;
}

export function mutatedCopy(name: string): string {
  const mutation = mutations[name];
  if (!mutation) throw new Error(`unknown mutation ${name}; known: ${Object.keys(mutations).join(', ')}`);
  const dir = mkdtempSync(path.join(tmpdir(), `pg-billing-mutant-${name}-`));
  for (const entry of ['src', 'tasks', 'sql', 'chaos', 'package.json', 'tsconfig.json']) {
    cpSync(path.join(root, entry), path.join(dir, entry), { recursive: true });
  }
  symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  const stale = staleMutations(dir).filter(
    (problem) => problem.startsWith(`mutation ${name} `) || problem.startsWith(`mutation ${name}:`),
  );
  if (stale.length > 0) throw new Error(stale.join('\n'));
  const file = path.join(dir, mutation.file);
  let text = readFileSync(file, 'utf8');
  for (const [from, to] of mutation.replace) text = text.replaceAll(from, to);
  writeFileSync(file, text);
  return dir;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [which = 'all', ...chaosArgs] = process.argv.slice(2);
  const names = which === 'all' ? Object.keys(mutations) : [which];
  let survived = 0;
  for (const name of names) {
    const dir = mutatedCopy(name);
    console.log(`# mutation ${name}: ${mutations[name]!.what} (copy in ${dir})`);
    const result = spawnSync(process.execPath, [path.join(dir, 'chaos/chaos.ts'), ...chaosArgs], {
      cwd: dir,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    const lines = (result.stdout ?? '').split('\n');
    for (const line of lines.filter(
      (l) => l.startsWith('FAIL') || l.startsWith('       ') || l.startsWith('commands '),
    ))
      console.log(`  ${line}`);
    if (result.status !== 1) console.log(lines.slice(-15).join('\n'));
    const caught = result.status === 1;
    if (!caught) survived += 1;
    console.log(`# mutation ${name}: ${caught ? 'caught (chaos run failed)' : `SURVIVED (exit ${result.status})`}`);
    if (result.status !== 0 && result.status !== 1) console.log(result.stderr);
    rmSync(dir, { recursive: true, force: true });
  }
  process.exit(survived ? 1 : 0);
}
