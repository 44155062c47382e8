// A full NOTIFY queue (issue 24, item 1), for real: a scratch PostgreSQL 18 cluster whose queue is
// 64 pages (max_notify_queue_pages' minimum), a real `billing worker` process, attackers that log
// in with the client role (and then as a superuser). A listener left in an open transaction pins
// the queue and a second session fills it until PostgreSQL refuses ("too many notifications").
// Commands enqueued before and during the attack are applied and reach a waiting TypeScript client
// and billing.await_result; the service ends the attacker's session by itself; afterwards (and after
// a superuser attacker, whom it cannot end, disconnects) billing.submit works again and
// notifications flow, with nobody but the service calling pg_notification_queue_usage().
import { mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import t, { type Test } from 'tap';
import { fillQueue, pinQueue, sessionEnded } from '../chaos/notify-attack.ts';
import { createBillingClient } from '../src/client/client.ts';
import { migrate } from '../src/db/migrate.ts';
import { PostgresCluster } from '../src/embedded/postgres-cluster.ts';
import { CliProcess } from './helpers/cli.ts';
import { waitFor } from './helpers/wait.ts';
// A free port below the ephemeral range: another suite may run beside this one.
import { freePortsFrom } from '../chaos/replicated-cluster.ts';
import { queryOnce } from '../chaos/query-once.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'pg-billing-notify-queue-'));
chmodSync(dir, 0o777); // the server runs as the postgres user when this is root
const cluster = new PostgresCluster({
  dataDir: path.join(dir, 'pgdata'),
  port: (await freePortsFrom(25300, 1))[0]!,
  initdbSync: false,
  settings: { max_notify_queue_pages: 64 },
});
const sessions: pg.Client[] = [];
let worker: CliProcess | undefined;
t.teardown(async () => {
  await worker?.stop('SIGKILL');
  await Promise.all(sessions.map((s) => s.end().catch(() => {})));
  await cluster.stop('immediate').catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});
await cluster.start();
const url = cluster.databaseUrl('postgres');
await migrate({ connectionString: url });
const admin = <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => queryOnce<R>(url, text, values);
for (const login of ['attacker', 'filler', 'victim'])
  await admin(`drop user if exists ${login}; create user ${login} in role billing_client`);
const urlAs = (user: string) => cluster.databaseUrl('postgres').replace('postgres@', `${user}@`);
async function connect(connectionString: string): Promise<pg.Client> {
  const session = new pg.Client({ connectionString });
  session.on('error', () => {});
  await session.connect();
  sessions.push(session);
  return session;
}

/** After the attacker left: submit works and a notification of its result arrives, both within 10 s. */
async function serviceBack(t: Test, label: string): Promise<void> {
  const listener = await connect(url);
  await listener.query('listen billing_results');
  const notified = new Promise<void>((resolve) => listener.once('notification', () => resolve()));
  const submitter = await connect(urlAs('victim'));
  const id = `back-${label}`;
  await waitFor(
    'a billing.submit that commits',
    () =>
      submitter
        .query('select billing.submit($1, $2::json)', ['credit', JSON.stringify({ id, account: 'v', amount: '1' })])
        .then(() => true),
    10_000,
    { throughErrors: true },
  );
  await Promise.race([
    notified,
    new Promise((_, reject) => setTimeout(() => reject(new Error('no notification within 10 s')), 10_000)),
  ]);
  t.pass(`${label}: billing.submit commits and billing_results notifications flow again within 10 s`);
  await listener.end();
}

t.test('a client-role login pins and fills the NOTIFY queue', async (t) => {
  worker = new CliProcess(['worker'], {
    DATABASE_URL: url,
    BILLING_HTTP_PORT: '0',
    BILLING_CONCURRENCY: '10',
    // Long enough that the attack below is complete (queue full, commands answered) before the
    // attacker's grace period ends; the watchdog reads the queue every second.
    BILLING_NOTIFY_PIN_GRACE_MS: '15000',
  });
  await worker.waitFor(/"msg":"worker started"/);
  const client = createBillingClient({ connectionString: urlAs('victim') });
  t.teardown(() => client.close());
  t.equal((await client.openAccount({ id: 'open-v', account: 'v' })).status, 'applied', 'before the attack');
  // Enqueued before the attack, due only once the queue is full (run_at moved by an UPDATE, which notifies nobody).
  await admin(
    `select graphile_worker.add_job('billing/credit', json_build_object('id', 'scheduled', 'account', 'v', 'amount', '7'),
       run_at => now() + interval '1 hour')`,
  );

  const attacker = await connect(urlAs('attacker'));
  const attackerGone = sessionEnded(attacker);
  await pinQueue(attacker);
  const filler = await connect(urlAs('filler'));
  t.same(await fillQueue(filler, { most: 40 }), { sent: 40, full: false }, 'the queue is more than half full');
  const during = await client.credit({ id: 'during', account: 'v', amount: 5n });
  t.equal(during.status, 'applied', 'a command enqueued during the attack reaches its waiting client (by polling)');
  t.ok((await fillQueue(filler)).full, 'the queue is full: PostgreSQL refuses a notification');
  await t.rejects(
    filler.query('select billing.submit($1, $2::json)', ['credit', '{"account": "v", "amount": "1"}']),
    /too many notifications in the NOTIFY queue/,
    'while it is full, no enqueue can commit (graphile_worker.add_job notifies)',
  );
  await admin(`update graphile_worker._private_jobs set run_at = now() where key is null and run_at > now()`);
  const reader = await connect(urlAs('victim'));
  const { rows } = await reader.query<{ status: string; code: string }>(
    `select status, code from billing.await_result('scheduled', 30)`,
  );
  t.same(
    rows,
    [{ status: 'applied', code: 'ok' }],
    'a command enqueued before the attack is applied while the queue is full',
  );
  t.equal((await client.result('scheduled'))?.status, 'applied', 'and the client reads it');

  await attackerGone;
  // The attacker sees its session end before the worker has written the line that says so.
  await worker.waitFor(/"msg":"ended a session that pinned the NOTIFY queue[^\n]*\n/);
  const ended = worker
    .logs()
    .filter(
      (line) =>
        line.msg ===
        'ended a session that pinned the NOTIFY queue (in one transaction or statement past the grace period)',
    );
  t.same(
    ended.map((line) => line.login),
    ['attacker'],
    'the service ended the attacker (and only it), with one log line',
  );
  await serviceBack(t, 'client-role attacker ended');
  const balance = (await client.balances(['v'])).get('v');
  t.equal(balance?.balance, 13n, 'every command applied once: 5 + 7 + 1');
});

t.test('a superuser pins and fills the queue, then leaves', async (t) => {
  const attacker = await connect(url);
  await pinQueue(attacker);
  const filler = await connect(url);
  t.ok((await fillQueue(filler)).full, 'the queue is full');
  await attacker.end();
  await serviceBack(t, 'superuser attacker left');
  t.notOk(
    worker!.logs().some((line) => line.msg?.toString().startsWith('ended a session') && line.login === 'postgres'),
    'the service never tried to end a superuser session',
  );
});
