// docker-compose.yml, checked without a Docker engine: workers log in as a member of the worker
// role (never the superuser), the init script that makes that login really does so, PostgreSQL's
// host port is optional, and `docker-compose config` accepts the file when docker-compose is here.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parse } from 'yaml';
import { createTestDatabase } from './helpers/database.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const composeText = readFileSync(`${root}docker-compose.yml`, 'utf8');
const readme = readFileSync(`${root}README.md`, 'utf8');
interface Service {
  environment: Record<string, string>;
  ports?: string[];
  expose?: string[];
  volumes?: string[];
}
const compose = parse(composeText) as { services: Record<string, Service> };
const { postgres, migrate, worker } = compose.services as Record<'postgres' | 'migrate' | 'worker', Service>;
const userOf = (url: string) => new URL(url.replace(/\$\{[^}]*\}/g, 'x')).username;

t.test('workers log in as billing_svc, the migration as the database owner', async (t) => {
  t.equal(userOf(worker.environment.DATABASE_URL!), 'billing_svc');
  t.equal(postgres.environment.BILLING_WORKER_USER, 'billing_svc', 'the init script makes that login');
  t.equal(userOf(migrate.environment.DATABASE_URL!), postgres.environment.POSTGRES_USER, 'migrations run as the owner');
  t.ok(postgres.volumes?.includes('./docker/postgres-init:/docker-entrypoint-initdb.d:ro'), 'init script mounted');
});

t.test("PostgreSQL's host port is optional: a free loopback port unless POSTGRES_HOST_PORT is set", async (t) => {
  t.same(postgres.ports, ['127.0.0.1:${POSTGRES_HOST_PORT:-}:5432']);
  t.match(readme, /POSTGRES_HOST_PORT/, 'the README says how to fix a port');
  t.notMatch(composeText, /4 hours/, "no stale comment: dead workers' jobs come back within seconds");
});

t.test(
  'workers serve /metrics on every interface of their container, for a scraper on the compose network',
  async (t) => {
    t.equal(worker.environment.BILLING_HTTP_HOST, '0.0.0.0', "the worker's own default is loopback only");
    t.same(worker.expose, [worker.environment.BILLING_HTTP_PORT], 'exposed to the network');
    t.notOk(worker.ports, 'and not published on the host');
    t.match(readFileSync(`${root}Dockerfile`, 'utf8'), /^ENV BILLING_HTTP_HOST="0\.0\.0\.0"$/m, 'the image alone too');
  },
);

t.test('the image gets what the worker runs: .dockerignore keeps src/, tasks/, sql/, bin/', async (t) => {
  const ignored = readFileSync(`${root}.dockerignore`, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  for (const kept of ['src', 'tasks/billing/credit.ts', 'sql', 'bin', 'package.json'])
    t.notOk(
      ignored.some(
        (pattern) => pattern === '*' || pattern === '**' || kept.split('/')[0] === pattern.replace(/^\/|\/$/g, ''),
      ),
      `${kept} is in the build context`,
    );
  t.match(readFileSync(`${root}Dockerfile`, 'utf8'), /^COPY \. \.$/m, 'and the Dockerfile copies the context');
});

t.test('docker-compose config accepts the file', async (t) => {
  const run = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], {
    cwd: root,
    encoding: 'utf8',
  });
  if (run.error) {
    t.comment(`skipped: docker-compose is not installed here (${run.error.message})`);
    return;
  }
  t.equal(run.status, 0, run.stderr);
});

t.test('the init script creates a login in billing_worker and nothing more', async (t) => {
  const which = spawnSync('psql', ['--version']);
  if (which.error) {
    t.comment('skipped: psql is not installed here (the postgres image runs the script with its own)');
    return;
  }
  const database = await createTestDatabase('compose');
  const login = `billing_svc_${process.pid}`;
  t.teardown(async () => {
    await database.query(`drop role if exists ${login}`);
    await database.drop();
  });
  const url = new URL(database.url);
  const run = spawnSync('sh', [`${root}docker/postgres-init/10-billing-worker-login.sh`], {
    encoding: 'utf8',
    env: {
      ...process.env,
      PGHOST: url.hostname,
      PGPORT: url.port || '5432',
      PGPASSWORD: decodeURIComponent(url.password),
      POSTGRES_USER: decodeURIComponent(url.username) || 'postgres',
      POSTGRES_DB: database.name,
      BILLING_WORKER_USER: login,
      BILLING_WORKER_PASSWORD: 'secret',
    },
  });
  t.equal(run.status, 0, run.stderr);
  const { rows } = await database.query<{ login: boolean; superuser: boolean; worker: boolean; groups: string[] }>(
    `select r.rolcanlogin as login, r.rolsuper as superuser, pg_has_role(r.oid, 'billing_worker', 'member') as worker,
            array(select g.rolname::text from pg_auth_members m join pg_roles g on g.oid = m.roleid where m.member = r.oid) as groups
     from pg_roles r where r.rolname = $1`,
    [login],
  );
  t.same(rows, [{ login: true, superuser: false, worker: true, groups: ['billing_worker'] }]);
});
