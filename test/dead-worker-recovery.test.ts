// docs/guarantees.md, 5: a job locked by a worker that died is run by another worker within 10 seconds, and a
// live but paused worker's jobs are never handed out. Real worker processes, real PostgreSQL.
// RECOVERY_TEST_REAPER=off starts the workers without the reaper: the first test must then fail.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrate } from '../src/db/migrate.ts';
import { pickDeadIds } from '../src/worker/recovery/dead-ids.ts';
import { waitFor } from './helpers/wait.ts';

const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const dbName = `recovery_${process.pid}_${randomBytes(3).toString('hex')}`;
const dbUrl = (() => {
  const u = new URL(serverUrl);
  u.pathname = `/${dbName}`;
  return u.toString();
})();
const fixture = fileURLToPath(new URL('./helpers/recovery-worker.ts', import.meta.url));
const RECOVERY_LIMIT_MS = 10_000;

interface Worker {
  child: ChildProcess;
  pid: number;
  poolId: string;
  log: string[];
  exited: Promise<void>;
}
const children: ChildProcess[] = [];

function startWorker(): Promise<Worker> {
  const child = spawn(process.execPath, [fixture], {
    env: {
      ...process.env,
      DATABASE_URL: dbUrl,
      RECOVERY_REAPER: process.env.RECOVERY_TEST_REAPER === 'off' ? 'off' : 'on',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const log: string[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => log.push(d));
  return new Promise((resolve, reject) => {
    let out = '';
    // A deadline for a worker that never comes up, not a timing claim: starting Node, stripping
    // types and connecting took over 10 s at a load average of 30 on this 2-core machine.
    const timer = setTimeout(() => reject(new Error(`worker not ready in 60 s:\n${log.join('')}`)), 60_000);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /READY (\{.*\})\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        const info = JSON.parse(m[1]!) as { pid: number; poolId: string };
        resolve({ child, pid: info.pid, poolId: info.poolId, log, exited });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited early (${code}):\n${log.join('')}`));
    });
  });
}

const db = new pg.Client({ connectionString: dbUrl });

t.before(async () => {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  await admin.end();
  // graphile-worker's schema and ours, billing.worker_liveness included (sql/0002).
  await migrate({ connectionString: dbUrl });
  await db.connect();
  await db.query(`create table recovery_runs (
    job_id bigint not null, pid int not null, attempt int not null, at timestamptz not null default clock_timestamp())`);
});

t.teardown(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGCONT');
      c.kill('SIGKILL');
    }
  }
  await db.end().catch(() => {});
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${dbName} with (force)`);
  await admin.end();
});

async function enqueue(n: number, payload: object): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `select (graphile_worker.add_job('recovery_sleep', $1::json)).id from generate_series(1, $2)`,
    [JSON.stringify(payload), n],
  );
  return rows.map((r) => r.id);
}
const runsOf = async (ids: string[]) =>
  (
    await db.query<{ job_id: string; pid: number; attempt: number }>(
      'select job_id, pid, attempt from recovery_runs where job_id = any($1::bigint[]) order by at',
      [ids],
    )
  ).rows;
const lockersOf = async (ids: string[]) =>
  (
    await db.query<{ locked_by: string | null }>(
      'select distinct locked_by from graphile_worker.jobs where id = any($1::bigint[])',
      [ids],
    )
  ).rows.map((r) => r.locked_by);
/** Whether a session of `worker` (its pool is named after its pid) waits for a lock the test's session holds. */
const waitsOnTest = async (worker: Worker) => {
  const { rows } = await db.query(
    'select 1 from pg_stat_activity where application_name = $1 and pg_backend_pid() = any(pg_blocking_pids(pid))',
    [`recovery-worker ${worker.pid}`],
  );
  return rows.length > 0 || undefined;
};
/**
 * Resolves once `worker`'s reaper has made a whole pass that began after this call. Every pass
 * reads billing.worker_liveness (through worker_liveness_sessions()), nothing else of the worker
 * does after it started: with the table locked, the test sees a pass begin, and the second pass it
 * sees began after the first had ended (passes never overlap).
 */
async function reaperPass(worker: Worker): Promise<void> {
  for (let seen = 0; seen < 2; seen++) {
    await db.query('begin');
    try {
      await db.query('lock table billing.worker_liveness in access exclusive mode');
      await waitFor(`a reaper pass of worker ${worker.pid}`, () => waitsOnTest(worker), 30_000);
    } finally {
      await db.query('commit');
    }
  }
}
const remaining = async (ids: string[]) =>
  Number(
    (
      await db.query<{ n: string }>('select count(*) as n from graphile_worker.jobs where id = any($1::bigint[])', [
        ids,
      ])
    ).rows[0]!.n,
  );

t.test('pickDeadIds', async (t) => {
  const now = new Date('2026-01-01T12:00:00Z');
  const d = pickDeadIds({
    now,
    lockers: [
      { lockedBy: 'pool-dead', oldestLockedAt: now, jobs: 2 },
      { lockedBy: 'pool-live', oldestLockedAt: now, jobs: 1 },
      { lockedBy: 'pool-plain', oldestLockedAt: new Date(now.getTime() - 60_000), jobs: 1 },
      { lockedBy: 'pool-ancient', oldestLockedAt: new Date(now.getTime() - 5 * 3600_000), jobs: 1 },
    ],
    registrations: [
      { id: 'pool-dead', session: 'dead' },
      { id: 'pool-live', session: 'alive' },
      { id: 'worker-gone', session: 'dead' },
      { id: 'pool-hidden', session: 'unknown' },
    ],
  });
  t.same(d, {
    dead: ['pool-dead', 'worker-gone'],
    expiredUnregistered: ['pool-ancient'],
    unknown: ['pool-hidden', 'pool-plain'],
  });
});

t.test('jobs of a SIGKILLed worker are run by another worker within 10 s', async (t) => {
  const a = await startWorker();
  const ids = await enqueue(4, { firstMs: 60_000, laterMs: 50 });
  await waitFor('worker A to start all jobs', async () => (await runsOf(ids)).length === 4 || undefined, 30_000);
  t.same(await lockersOf(ids), [a.poolId], 'all jobs locked by A’s pool id');
  t.ok((await runsOf(ids)).every((r) => r.pid === a.pid));

  const b = await startWorker();
  // B's reaper has looked at A and must have left it alone. The kill below lands just after B's
  // next pass has read the registrations (the test's lock held it there), with A still alive: the
  // latest point of B's cycle, a whole interval before B can see A dead.
  await reaperPass(b);
  t.same(await lockersOf(ids), [a.poolId], 'B’s reaper leaves the live A alone');
  t.equal((await runsOf(ids)).length, ids.length, 'nothing re-run while A lives');

  const t0 = performance.now();
  a.child.kill('SIGKILL');
  await a.exited;
  let elapsed = Infinity;
  try {
    await waitFor(
      'the jobs to complete elsewhere',
      async () => (await remaining(ids)) === 0 || undefined,
      RECOVERY_LIMIT_MS + 5_000,
    );
    elapsed = performance.now() - t0;
  } catch (err) {
    t.comment(`B's log:\n${b.log.join('')}`);
    t.fail(String(err));
  }
  t.comment(`recovery: SIGKILL to all ${ids.length} jobs completed by the other worker in ${elapsed.toFixed(0)} ms`);
  console.log(`# dead-worker recovery time: ${elapsed.toFixed(0)} ms`);
  t.ok(elapsed < RECOVERY_LIMIT_MS, `completed in ${elapsed.toFixed(0)} ms (< ${RECOVERY_LIMIT_MS} ms)`);
  const reruns = (await runsOf(ids)).filter((r) => r.pid === b.pid);
  t.equal(reruns.length, ids.length, 'each job re-run once, by B');
  t.ok(reruns.every((r) => r.attempt === 2));

  b.child.kill('SIGKILL');
  await b.exited;
});

t.test('a paused (SIGSTOP) worker keeps its jobs; they run exactly once', async (t) => {
  const c = await startWorker();
  // Long enough that the jobs are still running after a slow start of D, even on a loaded machine:
  // a job that finished before the pause would prove nothing.
  const ids = await enqueue(3, { firstMs: 15_000, laterMs: 0 });
  await waitFor('worker C to start all jobs', async () => (await runsOf(ids)).length === 3 || undefined, 30_000);
  const d = await startWorker();
  t.same(await lockersOf(ids), [c.poolId]);

  c.child.kill('SIGSTOP');
  // D's reaper looks at the paused C three whole passes over (counted, not timed: a loaded machine
  // may run fewer passes in a given time); checked after each.
  for (let pass = 0; pass < 3; pass++) {
    await reaperPass(d);
    if ((await runsOf(ids)).some((r) => r.pid !== c.pid)) break;
  }
  t.same(
    (await runsOf(ids)).filter((r) => r.pid !== c.pid),
    [],
    'no job of the paused worker was run elsewhere',
  );
  t.same(await lockersOf(ids), [c.poolId], 'still locked by the paused worker');
  c.child.kill('SIGCONT');

  await waitFor('the jobs to complete', async () => (await remaining(ids)) === 0 || undefined, 30_000);
  const runs = await runsOf(ids);
  t.equal(runs.length, ids.length, 'each job ran exactly once');
  t.ok(
    runs.every((r) => r.pid === c.pid && r.attempt === 1),
    'all on the paused-then-resumed worker',
  );
  t.equal(d.child.exitCode, null, 'the other worker is still running');

  c.child.kill('SIGKILL');
  d.child.kill('SIGKILL');
  await Promise.all([c.exited, d.exited]);
});
