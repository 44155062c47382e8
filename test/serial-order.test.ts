// docs/guarantees.md, 6: `seq` order is a serial order. Commands that need a row created by another command
// (captures and releases of a hold, credits, debits and transfers of a new account) are enqueued
// in the same burst as their creators and run by three real worker processes at once; then every
// result is replayed in seq order through the chaos suite's independent model of the rules, which
// allows no "not yet visible" exception: each stored code and balance must come out the same.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { ReferenceLedger } from '../model/reference-ledger.ts';
import { createTestDatabase } from './helpers/database.ts';

const database = await createTestDatabase('serial_order');
t.teardown(() => database.drop());

const cliMain = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const workerCount = 3;
const rounds = 4;
/**
 * As many jobs as a worker runs at once (BILLING_CONCURRENCY, pinned below): creators and
 * dependents land in different processes.
 */
const block = 200;
const funded = Array.from({ length: 20 }, (_, i) => `f${i}`);

type Spec = { task: string; payload: { id: string } & Record<string, unknown> };
const sent = new Map<string, Spec>();

async function addJobs(specs: Spec[]): Promise<void> {
  for (const spec of specs) sent.set(spec.payload.id, spec);
  await database.query(
    `select count(*) from graphile_worker.add_jobs(array(
      select row('billing/' || (s->>'task'), s->'payload', null, null, null, null, null, null)::graphile_worker.job_spec
      from json_array_elements($1::json) with ordinality as e(s, n) order by n))`,
    [JSON.stringify(specs)],
  );
}

async function waitForResults(ids: string[], timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await database.query<{ n: number }>(
      'select count(*)::int as n from billing.operations where id = any($1)',
      [ids],
    );
    if (rows[0]!.n === ids.length) return;
    if (Date.now() > deadline)
      throw new Error(`${ids.length - rows[0]!.n} of ${ids.length} results missing after ${timeoutMs} ms`);
    await sleep(50);
  }
}

function startWorkers(): ChildProcess[] {
  return Array.from({ length: workerCount }, () => {
    const child = spawn(process.execPath, [cliMain, 'worker'], {
      env: {
        ...process.env,
        DATABASE_URL: database.url,
        BILLING_HTTP_PORT: '0',
        LOG_LEVEL: 'warn',
        BILLING_CONCURRENCY: String(block),
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    return child;
  });
}

async function stopWorkers(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        }),
    ),
  );
}

t.test(
  'creators and the commands that need their rows, in one burst through three workers, replay in seq order',
  async (t) => {
    const workers = startWorkers();
    t.teardown(() => stopWorkers(workers));
    const deadline = Date.now() + 60_000;
    for (;;) {
      const { rows } = await database.query<{ n: number }>(
        'select count(distinct os_pid)::int as n from billing.worker_liveness',
      );
      if (rows[0]!.n >= workerCount) break;
      if (Date.now() > deadline) throw new Error('workers did not register');
      await sleep(100);
    }

    const setup: Spec[] = [
      ...funded.map((account) => ({ task: 'open_account', payload: { id: `open-${account}`, account } })),
      ...funded.map((account) => ({ task: 'credit', payload: { id: `fund-${account}`, account, amount: '1000000' } })),
    ];
    await addJobs(setup.slice(0, funded.length));
    await waitForResults(setup.slice(0, funded.length).map((s) => s.payload.id));
    await addJobs(setup.slice(funded.length));
    await waitForResults(setup.slice(funded.length).map((s) => s.payload.id));

    // Each burst: a block of creators, then a block of the commands that need their rows, so that
    // each block fills one process's local queue and the two run at the same time.
    const bursts: Promise<void>[] = [];
    for (let r = 0; r < rounds; r++) {
      const holds: Spec[] = [];
      const closes: Spec[] = [];
      const opens: Spec[] = [];
      const uses: Spec[] = [];
      for (let i = 0; i < block; i++) {
        const hold = `h${r}-${i}`;
        const account = funded[i % funded.length]!;
        holds.push({ task: 'hold', payload: { id: hold, account, amount: '3' } });
        closes.push(
          i % 3 === 0
            ? { task: 'release', payload: { id: `rel-${hold}`, hold } }
            : {
                task: 'capture',
                payload: {
                  id: `cap-${hold}`,
                  hold,
                  amount: '2',
                  ...(i % 3 === 1 ? { to: funded[(i + 1) % funded.length] } : {}),
                },
              },
        );
        const fresh = `n${r}-${i}`;
        opens.push({ task: 'open_account', payload: { id: `open-${fresh}`, account: fresh } });
        uses.push(
          i % 2 === 0
            ? { task: 'transfer', payload: { id: `in-${fresh}`, from: account, to: fresh, amount: '5' } }
            : { task: 'credit', payload: { id: `in-${fresh}`, account: fresh, amount: '5' } },
        );
      }
      bursts.push(addJobs([...holds, ...closes, ...opens, ...uses]));
    }
    await Promise.all(bursts);
    await waitForResults([...sent.keys()]);

    const { rows: ops } = await database.query<{
      id: string;
      seq: bigint;
      type: string;
      code: string;
      created_at: Date;
      balances: { account: string; balance: string; held: string }[];
    }>('select id, seq, type, code, created_at, balances from billing.operations order by seq');
    const model = new ReferenceLedger('USD');
    const problems: string[] = [];
    for (const op of ops) {
      const spec = sent.get(op.id);
      if (!spec) {
        problems.push(`a result nobody sent: ${op.id}`);
        continue;
      }
      const outcome = model.replay({
        id: op.id,
        seq: op.seq,
        type: op.type,
        code: op.code,
        payload: spec.payload,
        balances: op.balances.map((b) => ({ account: b.account, balance: BigInt(b.balance), held: BigInt(b.held) })),
        startedAt: op.created_at,
        committedAt: op.created_at,
        storedExpiry: null,
      });
      problems.push(...outcome.problems);
    }
    const { rows: accounts } = await database.query<{ account: string; balance: bigint; held: bigint }>(
      'select account, balance, held from billing.accounts',
    );
    for (const a of accounts) {
      const m = model.accounts.get(a.account);
      if (!m || m.balance !== a.balance || m.held !== a.held)
        problems.push(
          `account ${a.account} is ${a.balance}/${a.held}, the replay ends at ${m ? `${m.balance}/${m.held}` : 'no account'}`,
        );
    }

    // How much the two sides of each pair overlapped: a dependent answered *_not_found ran before its
    // creator committed, which the replay accepts only when its seq is lower too.
    const codes = new Map<string, number>();
    for (const op of ops)
      if (op.type !== 'open_account' && op.type !== 'hold') codes.set(op.code, (codes.get(op.code) ?? 0) + 1);
    t.comment(`${ops.length} results; dependents by code: ${JSON.stringify(Object.fromEntries(codes))}`);
    t.same(problems.slice(0, 10), [], `replay in seq order: ${problems.length} disagreements`);
    t.equal(model.accounts.size, accounts.length, 'the replay opened every account the ledger has');
  },
);
