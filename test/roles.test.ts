import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { loadConfig } from '../src/config.ts';
import { resolveServerUrl, withDatabase } from '../src/db/connection.ts';
import { migrate, roleNamesFromEnv } from '../src/db/migrate.ts';
import { startWorker } from '../src/worker/run-worker.ts';
import { createTestDatabase } from './helpers/database.ts';
import { createLogins } from './helpers/logins.ts';
import { waitFor } from './helpers/wait.ts';
import { balanceOf, resultOf } from './helpers/ledger.ts';

// Roles are cluster-wide and test files run in parallel on one server: the group roles are created
// (idempotently) by the migration, the login users here are unique to this process and dropped after.
const database = await createTestDatabase('roles');
const roles = roleNamesFromEnv();
const logins = await createLogins(database, 'r', { worker: roles.worker, client: roles.client, reader: roles.reader });
const { users, urlAs, connectAs } = logins;

// The worker connects as a member of the worker role only: everything it does in this file proves
// that the role is enough to run the service.
const lockTimeoutMs = 300;
const logLines: string[] = [];
const logSink = new Writable({
  write(chunk, _encoding, done) {
    logLines.push(...String(chunk).split('\n').filter(Boolean));
    done();
  },
});
const worker = await startWorker(
  { ...loadConfig({}), databaseUrl: urlAs(users.worker), httpPort: -1, concurrency: 10, lockTimeoutMs },
  pino({ level: 'debug' }, logSink),
  (error) => {
    throw error;
  },
);
const client = await connectAs(users.client);
const reader = await connectAs(users.reader);
const workerSession = await connectAs(users.worker);

t.teardown(async () => {
  await worker.stop();
  await logins.drop(() => database.drop());
});

/** Runs a statement that must be refused for lack of privilege (SQLSTATE 42501). */
async function refused(t: Test, session: pg.Client, statement: string, what: string): Promise<void> {
  const error = await session.query(statement).then(
    () => undefined,
    (e: pg.DatabaseError) => e,
  );
  t.equal(error?.code, '42501', `${what}: ${error ? error.message : 'was allowed'}`);
}

async function submitAs(session: pg.Client, type: string, payload: unknown): Promise<bigint> {
  const { rows } = await session.query<{ job_id: string }>('select billing.submit($1, $2::json) as job_id', [
    type,
    JSON.stringify(payload),
  ]);
  return BigInt(rows[0]!.job_id);
}

t.test(
  'a client enqueues through billing.submit, a worker (worker role only) applies it, the client reads the result',
  async (t) => {
    // No order is promised between commands in flight: each waits for the one before.
    const commands: [string, { id: string } & Record<string, string>][] = [
      ['open_account', { id: 'r-open-1', account: 'r1' }],
      ['open_account', { id: 'r-open-2', account: 'r2' }],
      ['credit', { id: 'r-credit-1', account: 'r1', amount: '500' }],
      ['transfer', { id: 'r-transfer-1', from: 'r1', to: 'r2', amount: '120' }],
    ];
    for (const [type, payload] of commands) {
      await submitAs(client, type, payload);
      const { rows } = await client.query<{ code: string }>('select code from billing.await_result($1, 15)', [
        payload.id,
      ]);
      t.equal(rows[0]!.code, 'ok', `${payload.id}: the client waits for its result with billing.await_result`);
    }
    const { rows: results } = await client.query<{ id: string; code: string }>(
      "select id, code from billing.operations where id like 'r-%' order by seq",
    );
    t.same(
      results.map((r) => [r.id, r.code]),
      [
        ['r-open-1', 'ok'],
        ['r-open-2', 'ok'],
        ['r-credit-1', 'ok'],
        ['r-transfer-1', 'ok'],
      ],
    );
    const { rows: balances } = await client.query<{ account: string; balance: string }>(
      "select account, balance from billing.accounts where account in ('r1', 'r2') order by account",
    );
    t.same(
      balances,
      [
        { account: 'r1', balance: '380' },
        { account: 'r2', balance: '120' },
      ],
      'the client reads balances',
    );
    const { rows: conflicts } = await client.query('select * from billing.id_conflicts');
    t.same(conflicts, [], 'the client reads id conflicts');
  },
);

t.test('the client cannot touch balances, holds, the journal or graphile_worker', async (t) => {
  await refused(
    t,
    client,
    "update billing.accounts set balance = balance + 1000 where account = 'r1'",
    'update billing.accounts',
  );
  await refused(
    t,
    client,
    "insert into billing.accounts (account, currency) values ('mine', 'USD')",
    'insert into billing.accounts',
  );
  await refused(t, client, "delete from billing.accounts where account = 'r2'", 'delete from billing.accounts');
  await refused(t, client, 'select * from billing.holds', 'select billing.holds');
  await refused(t, client, "update billing.holds set status = 'released'", 'update billing.holds');
  await refused(
    t,
    client,
    "insert into billing.entries (operation_id, account, balance_delta, held_delta, balance_after, held_after) values ('r-credit-1', 'r1', 1, 0, 381, 0)",
    'insert into billing.entries',
  );
  await refused(t, client, "update billing.operations set code = 'ok'", 'update billing.operations');
  await refused(
    t,
    client,
    "select graphile_worker.add_job('billing/credit', json_build_object('account', 'r1', 'amount', '1'))",
    'graphile_worker.add_job',
  );
  await refused(
    t,
    client,
    "select graphile_worker.add_job('billing/expire_hold', json_build_object('hold', 'x'))",
    'graphile_worker.add_job (expire_hold)',
  );
  await refused(t, client, 'select graphile_worker.complete_jobs(array[1::bigint])', 'graphile_worker.complete_jobs');
  await refused(
    t,
    client,
    "select graphile_worker.permanently_fail_jobs(array[1::bigint], 'x')",
    'graphile_worker.permanently_fail_jobs',
  );
  await refused(t, client, 'select * from graphile_worker.jobs', 'select graphile_worker.jobs');
  await refused(t, client, 'select * from graphile_worker._private_jobs', 'select graphile_worker._private_jobs');
  t.same((await balanceOf(database, 'r1'))!.balance, 380n, 'balance unchanged');
});

t.test('billing.submit refuses unknown command types and payloads that are not objects', async (t) => {
  for (const type of ['expire_hold', 'expire', 'Credit', '../credit', 'credit; drop table billing.accounts', '']) {
    const error = await client
      .query('select billing.submit($1, $2::json)', [type, '{"account":"r1","amount":"1"}'])
      .then(
        () => undefined,
        (e: pg.DatabaseError) => e,
      );
    t.equal(error?.code, '22023', `type ${JSON.stringify(type)} refused: ${error?.message}`);
  }
  const nullType = await client.query("select billing.submit(null, '{}')").then(
    () => undefined,
    (e: pg.DatabaseError) => e,
  );
  t.equal(nullType?.code, '22023', 'a null type is refused');
  for (const payload of ['"text"', '5', 'null', 'true']) {
    const error = await client.query('select billing.submit($1, $2::json)', ['credit', payload]).then(
      () => undefined,
      (e: pg.DatabaseError) => e,
    );
    t.equal(error?.code, '22023', `payload ${payload} refused`);
  }
  const { rows } = await database.query<{ n: bigint }>(
    "select count(*) as n from graphile_worker.jobs where task_identifier not like 'billing/%' or task_identifier like 'billing/expire%'",
  );
  t.equal(rows[0]!.n, 0n, 'nothing but billing commands was enqueued');
});

t.test("a client's temporary function named like one that billing.submit calls does not hijack it", async (t) => {
  await client.query("create function pg_temp.json_typeof(json) returns text language sql as $$ select 'object' $$");
  const { rows: own } = await client.query<{ kind: string }>(`select pg_temp.json_typeof('"text"'::json) as kind`);
  t.equal(own[0]!.kind, 'object', 'the impostor exists and answers "object" for a string');
  const error = await client.query(`select billing.submit('credit', '"text"'::json)`).then(
    () => undefined,
    (e: pg.DatabaseError) => e,
  );
  t.equal(error?.code, '22023', 'submit still sees a string and refuses it');
  await refused(
    t,
    client,
    "create function public.json_typeof(json) returns text language sql as $$ select 'object' $$",
    'creating functions in public',
  );
  await refused(
    t,
    client,
    "create function billing.json_typeof(json) returns text language sql as $$ select 'object' $$",
    'creating functions in billing',
  );
  const { rows } = await database.query<{ secdef: boolean; config: string[]; owner: string; public_execute: boolean }>(`
    select p.prosecdef as secdef, p.proconfig as config, pg_get_userbyid(p.proowner) as owner,
           exists (select from aclexplode(p.proacl) as a where a.grantee = 0 and a.privilege_type = 'EXECUTE') as public_execute
    from pg_proc as p where p.oid = 'billing.submit(text, json)'::regprocedure`);
  t.same(
    rows[0],
    { secdef: true, config: ['search_path=pg_catalog, pg_temp'], owner: roles.owner, public_execute: false },
    'SECURITY DEFINER, fixed search_path ending in pg_temp, owned by the owner role (not a superuser), no EXECUTE for PUBLIC',
  );
});

t.test('the reader reads everything and writes nothing', async (t) => {
  for (const table of [
    'billing.accounts',
    'billing.operations',
    'billing.holds',
    'billing.entries',
    'billing.id_conflicts',
    'billing.worker_liveness',
    'graphile_worker.jobs',
    'graphile_worker._private_jobs',
    'graphile_worker._private_tasks',
  ]) {
    const { rowCount } = await reader.query(`select * from ${table} limit 1`);
    t.ok(rowCount !== null, `reads ${table}`);
  }
  const { rows } = await reader.query<{ balance: string }>("select balance from billing.accounts where account = 'r2'");
  t.equal(rows[0]!.balance, '120');
  await refused(t, reader, "update billing.accounts set balance = 0 where account = 'r2'", 'update billing.accounts');
  await refused(
    t,
    reader,
    "insert into billing.operations (id, type, status, code, request, fingerprint) values ('x', 'credit', 'applied', 'ok', '{}', 'x')",
    'insert into billing.operations',
  );
  await refused(t, reader, 'delete from billing.entries', 'delete from billing.entries');
  await refused(t, reader, 'truncate billing.holds', 'truncate billing.holds');
  await refused(t, reader, "select billing.submit('credit', '{}')", 'billing.submit');
  await refused(t, reader, "select graphile_worker.add_job('billing/credit', '{}')", 'graphile_worker.add_job');
  await refused(t, reader, 'select graphile_worker.complete_jobs(array[1::bigint])', 'graphile_worker.complete_jobs');
  await refused(t, reader, 'delete from graphile_worker._private_jobs', 'delete graphile_worker._private_jobs');
});

t.test('the worker role writes the ledger but cannot rewrite history', async (t) => {
  await refused(
    t,
    workerSession,
    "delete from billing.operations where id = 'r-open-1'",
    'delete from billing.operations',
  );
  await refused(
    t,
    workerSession,
    "update billing.operations set code = 'ok' where id = 'r-open-1'",
    'update billing.operations',
  );
  await refused(t, workerSession, 'update billing.entries set balance_delta = 0', 'update billing.entries');
  await refused(t, workerSession, 'update billing.id_conflicts set type = type', 'update billing.id_conflicts');
  await refused(t, workerSession, 'delete from billing.entries', 'delete from billing.entries');
  await refused(t, workerSession, 'truncate billing.accounts', 'truncate billing.accounts');
  await refused(t, workerSession, 'alter table billing.accounts drop constraint available_not_negative', 'alter table');
  await refused(t, workerSession, 'create table billing.mine (x int)', 'create table in billing');
});

t.test('no role but the owner and the worker may change balances, holds or the journal', async (t) => {
  const { rows } = await database.query<{ tbl: string; grantee: string; privilege: string }>(`
    select c.relname as tbl, case a.grantee when 0 then 'PUBLIC' else pg_get_userbyid(a.grantee) end as grantee,
           a.privilege_type as privilege
    from pg_class as c cross join lateral aclexplode(c.relacl) as a
    where c.oid in ('billing.accounts'::regclass, 'billing.holds'::regclass, 'billing.entries'::regclass)
      and a.privilege_type in ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')`);
  const grantees = [...new Set(rows.map((r) => r.grantee))].sort();
  t.same(grantees, [roles.owner, roles.worker].sort(), JSON.stringify(rows));
  const { rows: superusers } = await database.query<{ rolname: string }>(
    'select rolname from pg_roles where rolname = any($1) and (rolsuper or rolcanlogin or rolbypassrls)',
    [Object.values(roles)],
  );
  t.same(superusers, [], 'the group roles cannot log in, are not superusers and do not bypass row security');
});

t.test(
  'worker connections run with statement_timeout, lock_timeout and idle_in_transaction_session_timeout',
  async (t) => {
    const config = worker.runtime.config;
    // Every connection of the worker's own ledger pool, held at once so that none is counted twice.
    const held = await Promise.all(Array.from({ length: config.poolSize }, () => worker.runtime.pool.connect()));
    try {
      for (const connection of held) {
        const { rows } = await connection.query<{ name: string; setting: string }>(
          "select name, setting from pg_settings where name in ('statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout') order by name",
        );
        t.same(rows, [
          { name: 'idle_in_transaction_session_timeout', setting: String(config.idleInTransactionTimeoutMs) },
          { name: 'lock_timeout', setting: String(lockTimeoutMs) },
          { name: 'statement_timeout', setting: String(config.statementTimeoutMs) },
        ]);
      }
    } finally {
      for (const connection of held) connection.release();
    }
  },
);

/** Log lines since `from` whose error carries SQLSTATE 55P03 (lock_not_available: lock_timeout). */
function lockTimeouts(from: number): { msg: string; component?: string; command_id?: string }[] {
  return logLines
    .slice(from)
    .map(
      (line) =>
        JSON.parse(line) as {
          msg: string;
          component?: string;
          command_id?: string;
          err?: { code?: string };
          error?: { code?: string };
        },
    )
    .filter((entry) => (entry.err?.code ?? entry.error?.code) === '55P03');
}

t.test('a command stuck behind a row lock times out and is retried, instead of stalling the worker', async (t) => {
  const blocker = await database.pool.connect();
  await blocker.query('begin');
  await blocker.query("select * from billing.accounts where account = 'r2' for update");
  const before = logLines.length;
  await submitAs(client, 'credit', { id: 'r-stuck', account: 'r2', amount: '1' });
  const timedOut = await waitFor('the stuck command to hit lock_timeout', () =>
    lockTimeouts(before).find((entry) => entry.command_id === 'r-stuck'),
  );
  t.equal(timedOut.msg, 'command failed, will retry', 'the worker gave up waiting for the lock (55P03) and will retry');
  // Meanwhile the worker still applies commands that do not need the locked row.
  await submitAs(client, 'credit', { id: 'r-free', account: 'r1', amount: '1' });
  t.equal((await resultOf(database, 'r-free')).code, 'ok');
  await blocker.query('commit');
  blocker.release();
  t.equal((await resultOf(database, 'r-stuck', 20_000)).code, 'ok', 'the retry applied it once the lock was gone');
  t.equal((await balanceOf(database, 'r2'))!.balance, 121n);
});

t.test("graphile-worker's queue connections run with the same lock_timeout", async (t) => {
  const blocker = await database.pool.connect();
  const before = logLines.length;
  await blocker.query('begin');
  await blocker.query('lock table graphile_worker._private_jobs in access exclusive mode');
  const blockerPid = (await blocker.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
  try {
    // A queue statement (a fetch, or the reaper's pass) waits behind the lock, then gives up.
    await waitFor('a queue connection to wait on the lock', async () =>
      (
        await database.query(
          "select 1 from pg_stat_activity where $1 = any(pg_blocking_pids(pid)) and application_name = 'pg-billing-queue'",
          [blockerPid],
        )
      ).rowCount
        ? true
        : undefined,
    );
    const timedOut = await waitFor('a queue statement to hit lock_timeout', () => {
      const lines = lockTimeouts(before);
      return lines.length > 0 ? lines : undefined;
    });
    t.ok(
      timedOut.length > 0,
      `queue statements gave up with 55P03: ${[...new Set(timedOut.map((entry) => entry.msg))].join('; ')}`,
    );
  } finally {
    await blocker.query('commit');
    blocker.release();
  }
  await submitAs(client, 'credit', { id: 'r-after-lock', account: 'r1', amount: '1' });
  t.equal((await resultOf(database, 'r-after-lock')).code, 'ok', 'the worker carries on');
});

// The privileges table of docs/security.md, as `role object: tokens` lines (tokens like SELECT or UPDATE(held)).
function documentedPrivileges(): { rows: { role: string; object: string; tokens: string[] }[] } {
  const readme = readFileSync(fileURLToPath(new URL('../docs/security.md', import.meta.url)), 'utf8');
  const table = readme.slice(readme.indexOf('<!-- privileges:begin -->'), readme.indexOf('<!-- privileges:end -->'));
  const roleName: Record<string, string> = {
    billing_owner: roles.owner,
    billing_worker: roles.worker,
    billing_client: roles.client,
    billing_reader: roles.reader,
  };
  const rows = table
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => {
      const [role, object, privileges] = line.split(' | ').map((cell) => cell.replace(/^\| |\s*\|$/g, '').trim());
      const tokens = [...privileges!.matchAll(/([A-Z]+)(?:\s*\(([^)]*)\))?/g)].flatMap(([, privilege, columns]) =>
        columns ? columns.split(',').map((column) => `${privilege}(${column.trim()})`) : [privilege!],
      );
      return { role: roleName[role!.replaceAll('`', '')]!, object: object!, tokens };
    });
  return { rows };
}

// A function's NULL acl means PostgreSQL's default, which gives PUBLIC EXECUTE: acldefault() spells it out.
const objectsQuery = `
  select case when n.nspname = 'public' then 'public.' else n.nspname || '.' end || c.relname as object, n.nspname as schema,
         case c.relkind when 'S' then 'sequence' else 'relation' end as kind, c.relacl as acl, c.relowner as owner, c.oid
  from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
  where (n.nspname in ('billing', 'graphile_worker') or (n.nspname = 'public' and c.relname = 'pgbilling_migrations'))
    and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
  union all
  select replace(p.oid::regprocedure::text, ' ', ''), n.nspname, 'function',
         coalesce(p.proacl, acldefault('f', p.proowner)), p.proowner, p.oid
  from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace where n.nspname in ('billing', 'graphile_worker')
  union all
  select 'schema ' || n.nspname, n.nspname, 'schema', n.nspacl, n.nspowner, n.oid
  from pg_namespace as n where n.nspname in ('billing', 'graphile_worker')`;

t.test(
  'every role holds exactly the privileges of docs/security.md, column by column; the owner role owns everything',
  async (t) => {
    const objects = (
      await database.query<{ object: string; schema: string; kind: string; owner: number }>(objectsQuery)
    ).rows;
    const expected = new Map<string, Set<string>>();
    const expect = (role: string, object: string, tokens: string[]) => {
      const key = `${role} ${object.includes('(') ? object.replaceAll(' ', '') : object}`;
      expected.set(key, new Set([...(expected.get(key) ?? []), ...tokens]));
    };
    let ownerRow = false;
    for (const row of documentedPrivileges().rows) {
      const every = /^every (table and view|sequence|function) in `(\w+)`$/.exec(row.object);
      if (row.tokens.includes('OWNER')) ownerRow = true;
      else if (every) {
        const kind = { 'table and view': 'relation', sequence: 'sequence', function: 'function' }[every[1]!]!;
        for (const o of objects.filter((o) => o.schema === every[2] && o.kind === kind))
          expect(row.role, o.object, row.tokens);
      } else expect(row.role, row.object.replaceAll('`', ''), row.tokens);
    }
    t.ok(ownerRow, 'docs/security.md names what the owner role owns');

    const { rows: granted } = await database.query<{ grantee: string; object: string; token: string }>(
      `
    with objects as (${objectsQuery})
    select case a.grantee when 0 then 'PUBLIC' else pg_get_userbyid(a.grantee) end as grantee, o.object, a.privilege_type as token
    from objects as o cross join lateral aclexplode(o.acl) as a where a.grantee <> o.owner
    union all
    select case a.grantee when 0 then 'PUBLIC' else pg_get_userbyid(a.grantee) end, o.object,
           a.privilege_type || '(' || att.attname || ')'
    from objects as o join pg_attribute as att on att.attrelid = o.oid and o.kind = 'relation'
    cross join lateral aclexplode(att.attacl) as a where att.attacl is not null and a.grantee <> o.owner
    union all
    select member.rolname, 'role ' || granted.rolname, 'MEMBER'
    from pg_auth_members as m join pg_roles as member on member.oid = m.member join pg_roles as granted on granted.oid = m.roleid
    where member.rolname = any($1)`,
      [Object.values(roles)],
    );
    const actual = new Map<string, Set<string>>();
    for (const g of granted.filter((g) => g.grantee === 'PUBLIC' || Object.values(roles).includes(g.grantee))) {
      const key = `${g.grantee} ${g.object}`;
      actual.set(key, new Set([...(actual.get(key) ?? []), g.token]));
    }
    const lines = (map: Map<string, Set<string>>) =>
      [...map].map(([key, tokens]) => `${key}: ${[...tokens].sort().join(' ')}`).sort();
    t.same(lines(actual), lines(expected), 'the catalog grants what docs/security.md says, and nothing more');

    const notOwned = objects
      .filter((o) => o.owner !== objects.find((x) => x.object === 'schema billing')!.owner)
      .map((o) => o.object);
    const { rows: owner } = await database.query<{ name: string }>(
      "select pg_get_userbyid(nspowner) as name from pg_namespace where nspname = 'billing'",
    );
    t.equal(owner[0]!.name, roles.owner, 'the owner role owns the billing schema');
    t.same(notOwned, [], 'and every other object, billing.await_result and the migrations table included');

    const { rows: defaults } = await database.query(
      `
    select pg_get_userbyid(d.defaclrole) as creator, n.nspname, a.privilege_type, pg_get_userbyid(a.grantee) as grantee
    from pg_default_acl as d join pg_namespace as n on n.oid = d.defaclnamespace cross join lateral aclexplode(d.defaclacl) as a
    where n.nspname in ('billing', 'graphile_worker') or pg_get_userbyid(a.grantee) = any($1)`,
      [Object.values(roles)],
    );
    t.same(defaults, [], 'no default privilege widens future tables');

    const { rows: policies } = await database.query<{ name: string; worker: boolean; reader: boolean }>(
      `
    select c.relname as name,
           exists (select from pg_policies p where p.schemaname = 'graphile_worker' and p.tablename = c.relname and $1 = any(p.roles)) as worker,
           exists (select from pg_policies p where p.schemaname = 'graphile_worker' and p.tablename = c.relname and $2 = any(p.roles) and p.cmd = 'SELECT') as reader
    from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
    where n.nspname = 'graphile_worker' and c.relkind = 'r' and c.relrowsecurity`,
      [roles.worker, roles.reader],
    );
    t.ok(policies.length >= 4, `${policies.length} graphile-worker tables with row-level security`);
    t.same(
      policies.filter((p) => !p.worker || !p.reader),
      [],
      'each has a policy for the worker and one for the reader',
    );
  },
);

// Every function in schema billing, with the roles that may run it besides its owner. A function
// added without a decision here fails; so does one that PUBLIC (every login) may run.
const whoRunsEachFunction: Record<string, ('worker' | 'client' | 'reader')[]> = {
  'billing.submit(text,json)': ['client'],
  'billing.await_result(text,double precision)': ['client', 'reader'],
  'billing.account_history(text,bigint,integer)': ['client', 'reader'],
  'billing.account_history_before(text,bigint,integer)': ['client', 'reader'],
  'billing.balance_at(text,bigint)': ['client', 'reader'],
  'billing.balance_at(text,timestamp with time zone)': ['client', 'reader'],
  // DBAs' queries; the worker because inserting a result evaluates the indexes built on it.
  'billing.request_field(json,text)': ['worker', 'client', 'reader'],
  'billing.worker_liveness_sessions()': ['worker'],
  'billing.refresh_queue_statistics(bigint)': ['worker'],
  // The NOTIFY-queue watchdog's only power: ending client and reader sessions that pin the queue.
  'billing.end_queue_pinning_sessions(bigint)': ['worker'],
  // The expiry sweeper's set-based call (0027).
  'billing.expire_due_holds(integer,double precision)': ['worker'],
  // The payload-size guard on graphile-worker's job table and its helper (billing.submit's too).
  'billing.limit_job_payload()': [],
  // Fairness between logins (0018): triggers on graphile-worker's job table and their shared state.
  'billing.jobs_fair_priority()': [],
  'billing.jobs_fair_flush()': [],
  'billing.jobs_fair_done()': [],
  'billing.submitter_state()': [],
  // Payloads over 4 KiB kept apart from the job rows (0028): trigger functions.
  'billing.job_payload_apart()': [],
  'billing.job_payloads_done()': [],
  'billing.oversized_command_stub(json)': [],
  // `billing migrate` only.
  'billing.apply_access()': [],
  // Trigger functions: a trigger runs them without checking EXECUTE.
  'billing.check_entry_references()': [],
  'billing.refuse_journal_target_change()': [],
};

t.test('every function in billing has a decision on who may run it, and PUBLIC may run none', async (t) => {
  const { rows } = await database.query<{
    name: string;
    worker: boolean;
    client: boolean;
    reader: boolean;
    public: boolean;
  }>(
    `select p.oid::regprocedure::text as name,
            has_function_privilege($1, p.oid, 'execute') as worker, has_function_privilege($2, p.oid, 'execute') as client,
            has_function_privilege($3, p.oid, 'execute') as reader, has_function_privilege('public', p.oid, 'execute') as public
     from pg_proc as p where p.pronamespace = 'billing'::regnamespace`,
    [roles.worker, roles.client, roles.reader],
  );
  t.same(rows.map((row) => row.name).sort(), Object.keys(whoRunsEachFunction).sort(), 'each function is listed here');
  for (const row of rows) {
    const allowed = (['worker', 'client', 'reader'] as const).filter((role) => row[role]);
    t.same(
      allowed,
      whoRunsEachFunction[row.name] ?? [],
      `${row.name}: run by ${allowed.join(', ') || 'its owner only'}`,
    );
    t.notOk(row.public, `${row.name}: not by PUBLIC`);
  }
  const account = 'r-history';
  await submitAs(client, 'open_account', { id: 'r-history-open', account });
  await resultOf(database, 'r-history-open');
  const history = await client.query<{ id: string }>('select id from billing.account_history($1)', [account]);
  t.same(history.rows, [{ id: 'r-history-open' }], 'the client reads an account history');
  await refused(t, workerSession, `select * from billing.account_history('${account}')`, 'the worker reads no history');
  // The client may not read the journal, but billing.balance_at (SECURITY DEFINER) reads it for one account.
  const at = await client.query<{ balance: bigint; seq: bigint }>(
    'select balance, seq from billing.balance_at($1, at => clock_timestamp())',
    [account],
  );
  t.same(
    at.rows.map((row) => String(row.balance)),
    ['0'],
    'the client reads a balance at a point',
  );
  await refused(
    t,
    workerSession,
    `select * from billing.balance_at('${account}', after_seq => 1)`,
    'the worker reads no balance at a point',
  );
});

t.test('billing migrate gives a table a graphile-worker upgrade adds its owner, grants and policies', async (t) => {
  // What a graphile-worker release would do in its own migration, run by the migrating superuser.
  await database.query('create table graphile_worker._private_future (id int primary key)');
  await database.query('alter table graphile_worker._private_future enable row level security');
  await database.query('insert into graphile_worker._private_future values (1)');
  try {
    await migrate({ connectionString: database.url });
    const { rows } = await database.query<Record<string, unknown>>(
      `
      select pg_get_userbyid(relowner) as owner,
             (select array_agg(policyname::text order by policyname) from pg_policies where tablename = '_private_future') as policies,
             has_table_privilege($1, 'graphile_worker._private_future', 'delete') as worker_deletes,
             has_table_privilege($2, 'graphile_worker._private_future', 'select') as reader_selects,
             has_table_privilege($2, 'graphile_worker._private_future', 'insert') as reader_inserts
      from pg_class where oid = 'graphile_worker._private_future'::regclass`,
      [roles.worker, roles.reader],
    );
    t.same(rows[0], {
      owner: roles.owner,
      policies: ['billing_reader_select', 'billing_worker_all'],
      worker_deletes: true,
      reader_selects: true,
      reader_inserts: false,
    });
    const { rows: seen } = await reader.query('select id from graphile_worker._private_future');
    t.same(seen, [{ id: 1 }], 'the reader sees its rows through the policy');
    await refused(t, workerSession, 'delete from graphile_worker.migrations', 'delete from graphile_worker.migrations');
    await refused(
      t,
      workerSession,
      "update billing.accounts set currency = 'EUR' where account = 'r1'",
      "update an account's currency",
    );
    await refused(t, workerSession, 'update billing.holds set amount = 1', "update a hold's amount");
  } finally {
    await database.query('drop table graphile_worker._private_future');
  }
});

t.test('role names are configurable and the migration is idempotent about existing roles', async (t) => {
  const serverUrl = await resolveServerUrl();
  const name = `pgbilling_t_roles_custom_${process.pid}`;
  const custom = {
    owner: `pgb_own_${process.pid}`,
    worker: `pgb_wrk_${process.pid}`,
    client: `pgb_cli_${process.pid}`,
    reader: `pgb_rdr_${process.pid}`,
  };
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.query(`create database ${name}`);
    // The worker role exists already (an operator made it): the migration must take it as it is.
    await admin.query(`drop role if exists ${custom.worker}`);
    await admin.query(`create role ${custom.worker} nologin`);
    const url = withDatabase(serverUrl, name);
    await migrate({ connectionString: url, roles: custom });
    const check = new pg.Client({ connectionString: url });
    await check.connect();
    const { rows } = await check.query<Record<string, boolean | string>>(
      `
      select pg_get_userbyid((select proowner from pg_proc where oid = 'billing.submit(text, json)'::regprocedure)) as submit_owner,
             has_function_privilege($1, 'billing.submit(text, json)', 'execute') as client_submits,
             has_column_privilege($2, 'billing.accounts', 'balance', 'update') as worker_updates,
             has_column_privilege($2, 'billing.accounts', 'currency', 'update') as worker_updates_currency,
             has_table_privilege($3, 'billing.entries', 'select') as reader_reads,
             has_table_privilege($3, 'billing.entries', 'insert') as reader_writes,
             has_schema_privilege($1, 'graphile_worker', 'usage') as client_sees_queue`,
      [custom.client, custom.worker, custom.reader],
    );
    await check.end();
    t.same(rows[0], {
      submit_owner: custom.owner,
      client_submits: true,
      worker_updates: true,
      worker_updates_currency: false,
      reader_reads: true,
      reader_writes: false,
      client_sees_queue: false,
    });
  } finally {
    await admin.query(`drop database if exists ${name} with (force)`);
    for (const role of Object.values(custom)) await admin.query(`drop role if exists ${role}`);
    await admin.end();
  }
});

t.test('BILLING_ROLE_* name the roles', async (t) => {
  t.same(
    roleNamesFromEnv({
      BILLING_ROLE_OWNER: 'o',
      BILLING_ROLE_WORKER: 'w',
      BILLING_ROLE_CLIENT: 'c',
      BILLING_ROLE_READER: 'r',
    }),
    { owner: 'o', worker: 'w', client: 'c', reader: 'r' },
  );
  t.same(roleNamesFromEnv({}), {
    owner: 'billing_owner',
    worker: 'billing_worker',
    client: 'billing_client',
    reader: 'billing_reader',
  });
});
