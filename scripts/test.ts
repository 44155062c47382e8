// `npm test`: type check and lint, then the suite against a real PostgreSQL. The server is DATABASE_URL's,
// else the one on 127.0.0.1:5432, else an embedded one started here (data under .data/, stopped at
// the end), so a fresh machine with only Node.js runs the same suite; the first line says which.
// Extra arguments go to tap; `--which-server` only prints that line.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { checkDatabaseUrl, redactUrl } from '../src/config.ts';
import { findServerUrl, localServerUrl } from '../src/db/connection.ts';
import { startEmbeddedDatabase } from '../src/embedded/embedded-default.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name: string) => `${root}node_modules/.bin/${name}`;
const whichServerOnly = process.argv.includes('--which-server');
const tapArgs = process.argv.slice(2).filter((arg) => arg !== '--which-server');

/** Runs one step; false (with exitCode set) if it failed. */
function step(title: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): boolean {
  console.log(`\n# ${title}`);
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env });
  if (result.status === 0) return true;
  console.error(`# ${title}: failed (exit ${result.status ?? result.signal})`);
  process.exitCode = result.status ?? 1;
  return false;
}

try {
  if (process.env.DATABASE_URL) checkDatabaseUrl('DATABASE_URL', process.env.DATABASE_URL);
} catch (error) {
  console.error(`npm test: ${(error as Error).message}`);
  process.exit(1);
}
let databaseUrl = await findServerUrl();
if (process.env.DATABASE_URL) {
  console.log(
    `# tests run on DATABASE_URL: ${redactUrl(process.env.DATABASE_URL)} (each test file makes a database of its own there)`,
  );
} else if (databaseUrl) {
  console.log(
    `# tests run on the local PostgreSQL at ${localServerUrl} (DATABASE_URL is unset; each test file makes a database of its own)`,
  );
} else {
  console.log(
    '# tests run on an embedded PostgreSQL started for them (no DATABASE_URL, nothing on 127.0.0.1:5432; data in .data/test-postgres)',
  );
}
if (whichServerOnly) process.exit(0);

if (!step('type check', bin('tsc'), ['--noEmit', '-p', '.'])) process.exit();
// `npm run lint`: ESLint with the layer rules (eslint.config.js), then Prettier's check of the code.
if (!step('lint', bin('eslint'), ['.']) || !step('format', bin('prettier'), ['--check', '.'])) process.exit();

let embedded: Awaited<ReturnType<typeof startEmbeddedDatabase>> | undefined;
if (!databaseUrl) {
  const quiet = { info: () => {}, warn: (_: object, message?: string) => console.warn(message ?? '') };
  embedded = await startEmbeddedDatabase({ dataDir: `${root}.data/test-postgres`, database: 'postgres', log: quiet });
  databaseUrl = embedded.databaseUrl;
  console.log(`# embedded PostgreSQL at ${databaseUrl} (stopped at the end)`);
}
const env = { ...process.env, DATABASE_URL: databaseUrl };
try {
  if (step('generated schema types match the migrations', process.execPath, ['scripts/codegen.ts', '--check'], env)) {
    step('tests', bin('tap'), tapArgs, env);
  }
} finally {
  await embedded?.stop();
}
