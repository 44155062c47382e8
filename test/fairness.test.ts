import t from 'tap';
import type pg from 'pg';
import { roleNamesFromEnv } from '../src/db/migrate.ts';
import { createTestDatabase } from './helpers/database.ts';
import { createLogins } from './helpers/logins.ts';
import { resultOf } from './helpers/ledger.ts';
import { startTestWorker } from './helpers/worker.ts';
import { waitFor } from './helpers/wait.ts';

// Issue 24 item 11 (SPEC guarantee 8): a burst from one login must not hold another login's
// command back, and a login's waiting commands are capped, beyond which billing.submit is refused
// with its own SQLSTATE. Two real logins of the client role (the rule is per session_user). The
// full-size scenario is `node chaos/fairness.ts`.

const burst = 5_000;

const database = await createTestDatabase('fairness');
const client = roleNamesFromEnv().client;
const logins = await createLogins(database, 'fair', { a: client, b: client });
const a = await logins.connectAs(logins.users.a);
const b = await logins.connectAs(logins.users.b);
t.teardown(async () => {
  await logins.drop(() => database.drop());
});

const submit = (session: pg.Client, id: string) =>
  session.query(
    `select billing.submit('credit', json_build_object('id', $1::text, 'account', 'fa-1', 'amount', '1'))`,
    [id],
  );

const waitingOf = async (login: string): Promise<bigint> => {
  const { rows } = await database.query<{ n: bigint }>(
    'select coalesce(sum(waiting), 0)::int8 as n from billing.submitter_backlog where login = $1',
    [login],
  );
  return rows[0]!.n;
};

t.test("a login's waiting commands are capped; the refusal names the login, the cap and the setting", async (t) => {
  await database.query("insert into billing.accounts (account, currency, balance) values ('fa-1', 'USD', 0)");
  await database.query('update billing.fairness_settings set max_waiting_per_login = 50');
  t.teardown(() => database.query('update billing.fairness_settings set max_waiting_per_login = default'));

  await a.query(`select count(billing.submit('credit', json_build_object('id', 'cap-' || g, 'account', 'fa-1',
    'amount', '1'))) from generate_series(1, 50) g`);
  t.equal(await waitingOf(logins.users.a), 50n, 'A has 50 commands waiting: the cap');
  const refused = await submit(a, 'cap-51').then(
    () => undefined,
    (error: pg.DatabaseError) => error,
  );
  t.ok(refused, 'the 51st is refused');
  t.equal(refused?.code, '53400', 'SQLSTATE 53400 (configuration_limit_exceeded)');
  t.match(refused?.message, logins.users.a, 'the message names the login');
  t.match(refused?.message, /cap of 50 per login/, 'and the cap');
  t.match(refused?.hint, /max_waiting_per_login/, 'the hint names the setting');
  const { rows } = await database.query("select 1 from graphile_worker._private_jobs where payload->>'id' = 'cap-51'");
  t.equal(rows.length, 0, 'nothing was enqueued for it');

  await submit(b, 'cap-b');
  t.pass("another login's command is not refused");

  // Completed jobs are deleted by graphile-worker: the count goes back down and A may send again.
  const worker = await startTestWorker(database);
  try {
    await resultOf(database, 'cap-50', 30_000);
    await resultOf(database, 'cap-b', 30_000);
    await waitFor('A to have nothing waiting', async () =>
      (await waitingOf(logins.users.a)) === 0n ? true : undefined,
    );
    await submit(a, 'cap-51');
    t.equal((await resultOf(database, 'cap-51', 30_000)).code, 'ok', 'once drained, A is served again');
  } finally {
    await worker.stop();
  }
});

t.test("a burst from one login does not hold back another login's command", async (t) => {
  // The worker is busy with A's burst when B's command arrives: its local queue holds a fetch of
  // A's jobs it has not started (3 x concurrency), and its tasks hold more in the batcher. B's
  // command must go into the next batch or the one after, whatever the machine's speed: counted in
  // A's commands answered between B's enqueue and B's result (events, not time). Before, B waited
  // in the table until the worker had started every job it held, and then behind the rest of its
  // own fetch and of the batcher's queue: hundreds of A's commands here.
  const batchSize = 50;
  const worker = await startTestWorker(database, { concurrency: 200, batchSize });
  // A priority step of 10 commands: B's command (priority 0) ranks ahead of all of A's but the first 10.
  await database.query('update billing.fairness_settings set commands_per_priority_step = 10');
  t.teardown(() => database.query('update billing.fairness_settings set commands_per_priority_step = default'));
  try {
    await a.query(
      `select count(billing.submit('credit', json_build_object('id', 'burst-' || g, 'account', 'fa-1', 'amount', '1')))
       from generate_series(1, $1::int) g`,
      [burst],
    );
    const answered = async () =>
      (await database.query<{ n: bigint }>("select count(*) as n from billing.operations where id like 'burst-%'"))
        .rows[0]!.n;
    await waitFor('A to have results: the worker holds fetched jobs of A', async () =>
      (await answered()) > 0n ? true : undefined,
    );
    // A's results counted in the same statement (and snapshot) as B's enqueue.
    const { rows } = await b.query<{ answered: bigint }>(
      `select (select count(*) from billing.operations where id like 'burst-%') as answered,
              billing.submit('credit', json_build_object('id', 'lone-b', 'account', 'fa-1', 'amount', '1')) as job`,
    );
    const atEnqueue = BigInt(rows[0]!.answered);
    const lone = await resultOf(database, 'lone-b', 60_000);
    const before = await database.query<{ n: bigint }>(
      "select count(*) as n from billing.operations where id like 'burst-%' and seq < $1",
      [lone.seq],
    );
    const meanwhile = Number(BigInt(before.rows[0]!.n) - atEnqueue);
    // B's job is taken ahead at its wake-up and B goes into the batch cut after the next commit:
    // behind the batch in flight at its enqueue and, when the worker's look (a round trip) outlasts
    // that one, the next. Four batches leave room for a look slower than a batch; batches of 50,
    // so that a batch takes longer than that round trip on an idle machine too.
    t.ok(
      meanwhile <= 4 * batchSize,
      `${meanwhile} of A's commands were answered between B's enqueue and its result: at most four batches of ${batchSize}`,
    );
    t.ok(Number(atEnqueue) + meanwhile < burst, "B's result came while A's burst was still being answered");

    // Every one of A's commands gets its one result, and the per-login count goes back to zero.
    await waitFor(
      "every one of A's commands answered",
      async () => ((await answered()) === BigInt(burst) ? true : undefined),
      120_000,
    );
    await waitFor('A to have nothing waiting', async () =>
      (await waitingOf(logins.users.a)) === 0n ? true : undefined,
    );
    t.equal(await waitingOf(logins.users.b), 0n, 'nor B');
  } finally {
    await worker.stop();
  }
});
