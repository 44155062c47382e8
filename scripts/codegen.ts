// Regenerates src/db/schema.ts from a freshly migrated scratch database, or with --check fails
// when the committed file no longer matches the migrations (CI runs the check).
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { migrate } from '../src/db/migrate.ts';
import { resolveServerUrl, withDatabase } from '../src/db/connection.ts';

const check = process.argv.includes('--check');
const schemaFile = fileURLToPath(new URL('../src/db/schema.ts', import.meta.url));
const codegenBin = fileURLToPath(new URL('../node_modules/.bin/kysely-codegen', import.meta.url));

const serverUrl = await resolveServerUrl();
const scratch = `pgbilling_codegen_${process.pid}`;
const admin = new pg.Client({ connectionString: serverUrl });
await admin.connect();
await admin.query(`drop database if exists ${scratch}`);
await admin.query(`create database ${scratch}`);
try {
  const url = withDatabase(serverUrl, scratch);
  await migrate({ connectionString: url });
  const args = [
    '--dialect',
    'postgres',
    '--url',
    url,
    '--include-pattern',
    'billing.*',
    '--type-mapping',
    JSON.stringify({ int8: 'bigint' }),
    '--out-file',
    schemaFile,
    '--log-level',
    'error',
  ];
  if (check) args.push('--verify');
  execFileSync(codegenBin, args, { stdio: 'inherit' });
  console.log(check ? 'src/db/schema.ts matches the migrations' : `wrote ${schemaFile}`);
} catch (error) {
  if (check) console.error('src/db/schema.ts is out of date: run `npm run codegen` and commit it');
  process.exitCode = 1;
} finally {
  await admin.query(`drop database if exists ${scratch} with (force)`);
  await admin.end();
}
