// The fault schedule of a chaos run. Kills and terminated backends come on their own timers; the
// larger faults (PostgreSQL crash restart, paused worker, network partition) come one at a time,
// spread evenly over the run, so that each can be measured on its own.
import { setTimeout as sleep } from 'node:timers/promises';
import type { PostgresCluster } from '../src/embedded/postgres-cluster.ts';
import type { TcpProxy, TcpProxyGroup } from './tcp-proxy.ts';
import { localPortsOf, type WorkerProcess, type WorkerSupervisor } from './workers.ts';
import { harnessQuery } from './query-once.ts';

const query = harnessQuery('chaos-faults');

export interface FaultPlan {
  seconds: number;
  killEveryMs: number;
  terminateEveryMs: number;
  pgRestarts: number;
  /** Failovers of a replicated database (FaultContext.failover): the primary dies, a standby takes over. */
  failovers: number;
  pauses: number;
  pauseMs: number;
  partitions: number;
  /** How long the partition (blackhole) and the slow link (latency) each last. */
  partitionMs: number;
  /**
   * Kills the run must have done: the kill loop goes on past `seconds` until it has, since on a
   * loaded machine each kill waits longer for its moment and fewer fit in the time.
   */
  minKills: number;
  /**
   * Also go on killing until a job has run again after its command committed (a kill landed
   * between the commit and graphile-worker's completion of the job): the check that such a re-run
   * is absorbed proves nothing without one.
   */
  untilCommitWindowHit: boolean;
  /** How long past `seconds` the schedule may run for what it owes before the run fails. */
  overtimeMs: number;
}

export interface FaultStats {
  kills: number;
  killsMidTransaction: number;
  /** Of those, kills while the worker's final round trip (writes and COMMIT) was running. */
  killsAtCommit: number;
  pgRestarts: number;
  pgDowntimeMs: number[];
  /** When PostgreSQL was down (wall clock, ms): from the crash stop to accepting connections again. */
  pgDownWindows: { from: number; to: number }[];
  backendsTerminated: Record<string, number>;
  failovers: FailoverFigures[];
  pauses: {
    worker: number;
    jobsHeld: number;
    handedOut: number;
    finishedDuringPause: number;
    failedDuringPause: number;
    /** Given back by the worker itself (graphile-worker's returnJobs, sent before it stopped). */
    returnedDuringPause: number;
  }[];
  /** Counted only when connections were cut (blackhole, reset) or carried the latency. */
  partitions: { blackholes: number; resets: number; latencies: number };
  log: string[];
}

/** What one failover measured. */
export interface FailoverFigures {
  /** How the primary went: killed, or switched over by an HA manager. */
  how: string;
  /** Seconds into the fault schedule. */
  at: number;
  /** Enqueue transactions sent and not yet answered when the primary went, and the commands in them. */
  enqueuesInFlight: number;
  commandsInEnqueuesInFlight: number;
  /** Billing jobs enqueued and not yet done (queued or running) just before. */
  jobsWaiting: number;
  /** Results read on the primary just before: each must be on the new one, unchanged. */
  resultsRead: number;
  /** From the kill (or switchover order) until the new primary accepts writes. */
  promotionMs: number;
  /** From the promotion until the first result the new primary had not had at its promotion. */
  firstResultAfterPromotionMs: number;
  /** What the new primary's sessions waited on when no new result had come 5 s after the promotion. */
  stalledOn: string | undefined;
  /** Wall clock (ms) of the kill and of the promotion: the database was down in between. */
  downFrom: number;
  downTo: number;
}

export interface FaultContext {
  plan: FaultPlan;
  /** The single server of a run without failovers (crash restarts); undefined with failovers. */
  cluster: PostgresCluster | undefined;
  /** One failover, the n-th (from 0), all the way: the standby is synchronous again when it resolves. */
  failover?: (n: number) => Promise<FailoverFigures>;
  databaseUrl: string;
  databaseName: string;
  supervisor: WorkerSupervisor;
  proxy: TcpProxy | TcpProxyGroup | undefined;
  random: () => number;
  /** Called right before PostgreSQL is crashed: its statistics (deadlocks) do not survive a crash. */
  beforeCrash: () => Promise<void>;
  /** Whether a job has run again after its command committed (the workers' logs say so). */
  commitWindowHit: () => Promise<boolean>;
  note: (line: string) => void;
}

export function emptyFaultStats(): FaultStats {
  return {
    kills: 0,
    killsMidTransaction: 0,
    killsAtCommit: 0,
    pgRestarts: 0,
    pgDowntimeMs: [],
    pgDownWindows: [],
    backendsTerminated: {},
    failovers: [],
    pauses: [],
    partitions: { blackholes: 0, resets: 0, latencies: 0 },
    log: [],
  };
}

/** Runs the schedule until `plan.seconds` have passed; resolves when every fault has been undone. */
export async function runFaults(context: FaultContext, stats: FaultStats): Promise<void> {
  const { plan, supervisor, random } = context;
  const started = Date.now();
  const deadline = started + plan.seconds * 1000;
  let terminating = false;
  let pausing = false;
  let pausedWorker: WorkerProcess | undefined;
  // While the proxy swallows its bytes, the proxied worker is not killed: killed, it sends nothing
  // and the partition cuts nothing (a run failed so: SIGKILL 1.9 s into the blackhole).
  let blackholed = false;
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
  const note = (line: string) => {
    stats.log.push(`${elapsed()} ${line}`);
    context.note(`${elapsed()} ${line}`);
  };

  /** Workers with a ledger transaction open now; `writing`: in its last round trip, the one ending in COMMIT. */
  const busyWorkers = async (candidates: WorkerProcess[], writing: boolean): Promise<WorkerProcess[]> => {
    const rows = await query<{ client_port: number }>(
      context.databaseUrl,
      `select client_port from pg_stat_activity where datname = $1 and application_name = 'pg-billing-worker'
       and backend_xid is not null ${writing ? "and state = 'active' and query not like 'begin%'" : ''}`,
      [context.databaseName],
    ).catch(() => []);
    if (!rows.length) return [];
    const ports = new Set(rows.map((r) => r.client_port));
    return candidates.filter((w) => [...localPortsOf(w.pid)].some((port) => ports.has(port)));
  };

  const killLoop = async () => {
    let kills = 0;
    // What the run still owes after its time: the kills, the re-run after a commit.
    const owed = async () =>
      kills < plan.minKills
        ? `${kills} of the ${plan.minKills} SIGKILLs it needs`
        : plan.untilCommitWindowHit && !(await context.commitWindowHit().catch(() => false))
          ? 'no job ran again after its command committed'
          : undefined;
    for (let due: string | undefined; Date.now() + plan.killEveryMs < deadline || (due = await owed());) {
      if (due && Date.now() > deadline + plan.overtimeMs)
        throw new Error(`chaos: ${due}, after ${plan.seconds} s and ${plan.overtimeMs} ms more`);
      await sleep(plan.killEveryMs * (0.6 + 0.8 * random()));
      const candidates = () =>
        supervisor.workers.filter((w) => w !== pausedWorker && !(blackholed && w.kind === 'proxied'));
      if (!candidates().length) continue;
      // Two kills in three wait (up to 2.5 s, or the kill interval) for a worker whose COMMIT is on its
      // way: the server may commit (then the job is never marked done and its re-run must be absorbed)
      // or not (then it rolls back whole). The others land on any open transaction. With one in two, a
      // 15 s run had 3 such kills and none whose COMMIT landed once in about 50 runs, and its check that a
      // re-run was absorbed failed: a run that does not hit the window proves nothing about it.
      let busy: WorkerProcess[] = [];
      let atCommit = false;
      if (kills % 3 !== 2) {
        for (let poll = 0; poll < Math.min(2500, plan.killEveryMs) / 25 && !busy.length; poll++) {
          busy = await busyWorkers(candidates(), true);
          if (!busy.length) await sleep(25);
        }
        atCommit = busy.length > 0;
      }
      if (!busy.length) busy = await busyWorkers(candidates(), false);
      // The waits above may have let a partition begin: its proxied worker is not killed now.
      const pool = (busy.length ? busy : candidates()).filter((w) => candidates().includes(w));
      if (!pool.length) continue;
      const victim = pool[Math.floor(random() * pool.length)]!;
      supervisor.kill(victim);
      kills += 1;
      stats.kills += 1;
      if (busy.length) stats.killsMidTransaction += 1;
      if (atCommit) stats.killsAtCommit += 1;
      note(
        `SIGKILL worker ${victim.slot} (${victim.kind}, pid ${victim.pid})${atCommit ? ' during its last round trip (writes and COMMIT)' : busy.length ? ' mid-transaction' : ''}`,
      );
    }
  };

  const terminateLoop = async () => {
    while (Date.now() + plan.terminateEveryMs < deadline) {
      await sleep(plan.terminateEveryMs * (0.6 + 0.8 * random()));
      // Never during a pause, nor a pause during this: terminating the paused worker's liveness
      // session would rightly hand its jobs out, and the pause check would count them.
      if (pausing) continue;
      terminating = true;
      const rows = await query<{ application_name: string }>(
        context.databaseUrl,
        `select application_name, pg_terminate_backend(pid) from (
           select pid, application_name from pg_stat_activity
           where datname = $1 and application_name like 'pg-billing%' and pid <> pg_backend_pid()
           order by random() limit 2) as victims`,
        [context.databaseName],
      ).catch(() => []);
      terminating = false;
      for (const row of rows)
        stats.backendsTerminated[row.application_name] = (stats.backendsTerminated[row.application_name] ?? 0) + 1;
      if (rows.length) note(`pg_terminate_backend: ${rows.map((r) => r.application_name).join(', ')}`);
    }
  };

  const crashRestart = async () => {
    const cluster = context.cluster;
    if (!cluster) return note('crash restart: no single server in this run; skipped');
    await context.beforeCrash().catch(() => {});
    const down = Date.now();
    note('PostgreSQL: immediate (crash) stop');
    await cluster.stop('immediate');
    await sleep(500);
    await cluster.start();
    stats.pgRestarts += 1;
    stats.pgDowntimeMs.push(Date.now() - down);
    stats.pgDownWindows.push({ from: down, to: Date.now() });
    note(`PostgreSQL: back after ${Date.now() - down} ms (crash recovery)`);
  };

  const pause = async () => {
    while (terminating) await sleep(25);
    pausing = true;
    try {
      await pauseOne();
    } finally {
      pausing = false;
    }
  };

  const pauseOne = async () => {
    // Live workers holding jobs; right after a kill or a restart there may be none for a moment.
    let candidates: WorkerProcess[] = [];
    type Holder = { os_pid: number; ids: string[]; jobs: string[]; errors: string[]; attempts: number[] };
    let byPid = new Map<number, Holder>();
    for (let attempt = 0; attempt < 20 && !candidates.length; attempt++) {
      if (attempt) await sleep(250);
      const holders = await query<Holder>(
        context.databaseUrl,
        `select r.os_pid, array_agg(distinct r.id) as ids, array_agg(j.id::text order by j.id) as jobs,
                array_agg(coalesce(j.last_error, '') order by j.id) as errors,
                array_agg(j.attempts order by j.id) as attempts
         from graphile_worker.jobs j join billing.worker_liveness r on r.id = j.locked_by
         -- registered by a session that is still there (one just terminated hands its jobs out)
         join pg_stat_activity a on a.pid = r.backend_pid and a.backend_start = r.backend_start
         group by r.os_pid`,
      ).catch(() => []);
      byPid = new Map(holders.map((h) => [h.os_pid, h]));
      candidates = supervisor.workers.filter((w) => byPid.has(w.pid));
    }
    if (!candidates.length) {
      note('pause: no live worker held jobs for 5 s; skipped');
      return;
    }
    const worker = candidates[Math.floor(random() * candidates.length)]!;
    const held = byPid.get(worker.pid)!;
    pausedWorker = worker;
    supervisor.pause(worker);
    note(`SIGSTOP worker ${worker.slot} (pid ${worker.pid}) holding ${held.jobs.length} jobs`);
    await sleep(plan.pauseMs);
    const after = await query<{ id: string; locked_by: string | null; last_error: string; attempts: number }>(
      context.databaseUrl,
      `select id::text, locked_by, coalesce(last_error, '') as last_error, attempts from graphile_worker.jobs
       where id = any($1::bigint[])`,
      [held.jobs],
    ).catch(() => undefined);
    if (worker.child.exitCode === null && worker.child.signalCode === null) supervisor.resume(worker);
    pausedWorker = undefined;
    if (!after) {
      note('pause: could not read the jobs afterwards');
      return;
    }
    // A completion, a failure or a return the worker sent before it stopped may still land (a
    // return follows a pg_terminate_backend of its liveness session just before the pause: its
    // runner is being replaced). graphile-worker's return gives the attempt back; the reaper's
    // unlock does not. So a job unlocked with its last error unchanged and no attempt given back,
    // or locked by another worker with more attempts than before, was handed out.
    const errorBefore = new Map(held.jobs.map((id, i) => [id, held.errors[i] ?? '']));
    const attemptsBefore = new Map(held.jobs.map((id, i) => [id, held.attempts[i] ?? 0]));
    const failedByItself = after.filter((j) => j.locked_by === null && j.last_error !== errorBefore.get(j.id)).length;
    const returnedByItself = (j: (typeof after)[number]) =>
      j.attempts < attemptsBefore.get(j.id)! ||
      (j.locked_by !== null && !held.ids.includes(j.locked_by) && j.attempts <= attemptsBefore.get(j.id)!);
    const returned = after.filter((j) => j.last_error === errorBefore.get(j.id) && returnedByItself(j)).length;
    const handedOut = after.filter(
      (j) =>
        !returnedByItself(j) &&
        ((j.locked_by === null && j.last_error === errorBefore.get(j.id)) ||
          (j.locked_by !== null && !held.ids.includes(j.locked_by))),
    ).length;
    const finished = held.jobs.length - after.length;
    stats.pauses.push({
      worker: worker.slot,
      jobsHeld: held.jobs.length,
      handedOut,
      finishedDuringPause: finished,
      failedDuringPause: failedByItself,
      returnedDuringPause: returned,
    });
    note(
      `SIGCONT worker ${worker.slot} after ${plan.pauseMs} ms: ${handedOut} of its ${held.jobs.length} jobs handed out ` +
        `(${finished} completed, ${failedByItself} failed and ${returned} returned by requests it sent before it stopped)`,
    );
  };

  const partition = async () => {
    const proxy = context.proxy;
    if (!proxy) {
      note('partition: no proxied worker; skipped');
      return;
    }
    // The proxied worker may be restarting (killed, or PostgreSQL just came back): wait for its
    // sessions. A restart took over 25 s at a load average of 30 on this 2-core machine. Two at
    // once means it is running (its liveness session and a queue or ledger connection): with one,
    // a worker still starting sent nothing for the whole blackhole in 6 of 20 runs.
    // Waits (60 s at most) for `atLeast` connections open for at least `minAgeMs`.
    const connected = async (atLeast: number, minAgeMs = 0) => {
      for (let i = 0; i < 600 && proxy.connectionsOlderThan(minAgeMs) < atLeast; i++) await sleep(100);
      return proxy.connections;
    };
    // Two that have lived a second: a worker reconnecting after PostgreSQL's restart opens short
    // probes (is it up, is it migrated), and a blackhole begun on those cut nothing in 1 run of 24.
    // A fault counts only when it cut connections: a partition of nothing proves nothing.
    // The proxied worker is spared by the kill loop from here on; one it killed just before may
    // leave connections that send nothing: a blackhole that cut nothing is tried again (3 at most).
    blackholed = true;
    let cut = false;
    for (let attempt = 1; attempt <= 3 && !cut; attempt++) {
      note(`partition: blackhole (${await connected(2, 1000)} connections through the proxy)`);
      proxy.setMode({ kind: 'blackhole' });
      await sleep(plan.partitionMs);
      const swallowed = proxy.setMode({ kind: 'pass' });
      cut = swallowed > 0;
      if (cut) stats.partitions.blackholes += 1;
      note(
        swallowed > 0
          ? `partition healed: ${swallowed} connections whose bytes it swallowed were cut`
          : 'partition healed: no connection sent a byte during it, so it cut nothing and is not counted',
      );
      if (swallowed === 0) await sleep(1000);
    }
    blackholed = false;
    await sleep(1000);
    await connected(1);
    const reset = proxy.setMode({ kind: 'reset' });
    if (reset > 0) stats.partitions.resets += 1;
    note(`proxy: reset ${reset} connections${reset > 0 ? '' : ' (none open: not counted)'}`);
    await sleep(300);
    proxy.setMode({ kind: 'latency', ms: 200 });
    const slowed = await connected(1);
    if (slowed > 0) stats.partitions.latencies += 1;
    note(`proxy: 200 ms latency on ${slowed} connections`);
    await sleep(plan.partitionMs);
    proxy.setMode({ kind: 'pass' });
    note('proxy: pass');
  };

  let failovers = 0;
  const failover = async () => {
    if (!context.failover) return note('failover: no standby in this run; skipped');
    await context.beforeCrash().catch(() => {});
    const figures = await context.failover(failovers++);
    figures.at = (figures.downFrom - started) / 1000;
    stats.failovers.push(figures);
    stats.pgDownWindows.push({ from: figures.downFrom, to: figures.downTo });
    note(
      `failover (${figures.how}): ${figures.enqueuesInFlight} enqueues (${figures.commandsInEnqueuesInFlight} commands) in flight, ` +
        `${figures.jobsWaiting} jobs waiting, ${figures.resultsRead} results read before; promoted after ${figures.promotionMs} ms, ` +
        `first new result ${figures.firstResultAfterPromotionMs} ms after the promotion` +
        (figures.stalledOn ? `; 5 s after the promotion its sessions waited on ${figures.stalledOn}` : ''),
    );
  };

  const events: { at: number; run: () => Promise<void> }[] = [];
  for (let i = 0; i < plan.failovers; i++)
    events.push({ at: (plan.seconds * (i + 1)) / (plan.failovers + 1), run: failover });
  for (let i = 0; i < plan.pgRestarts; i++)
    events.push({ at: (plan.seconds * (i + 1)) / (plan.pgRestarts + 1), run: crashRestart });
  for (let i = 0; i < plan.pauses; i++) events.push({ at: (plan.seconds * (i + 0.3)) / plan.pauses, run: pause });
  for (let i = 0; i < plan.partitions; i++)
    events.push({ at: (plan.seconds * (i + 0.6)) / plan.partitions, run: partition });
  events.sort((a, b) => a.at - b.at);
  const majorLoop = async () => {
    for (const event of events) {
      const wait = started + event.at * 1000 - Date.now();
      if (wait > 0) await sleep(wait);
      await event.run().catch((error: Error) => note(`fault failed: ${error.message}`));
    }
  };

  await Promise.all([killLoop(), terminateLoop(), majorLoop()]);
}
