// One chaos run, end to end: a throwaway PostgreSQL cluster, worker processes, producers, the fault
// schedule, the drain, and the checks. chaos/chaos.ts is its command line; test/chaos.test.ts runs
// a short one.
import { mkdtempSync, readFileSync, rmSync, mkdirSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { migrate } from '../src/db/migrate.ts';
import { PostgresCluster } from '../src/embedded/postgres-cluster.ts';
import { runChecks, readSnapshot, type Check } from './checks.ts';
import { accountNames, CommandMix, openingCommands, seededRandom, type PlannedCommand } from './commands.ts';
import { findFaketime, type Faketime } from './faketime.ts';
import { emptyFaultStats, runFaults, type FailoverFigures, type FaultPlan, type FaultStats } from './faults.ts';
import { enqueueUntilDone, producerPool, runProducer, type ProducerStats } from './producer.ts';
import { parseDatabaseUrl } from '../src/db/hosts.ts';
import { PgAutoFailoverFormation } from './pg-auto-failover.ts';
import { freePortsFrom } from './replicated-cluster.ts';
import { ReplicatedPair, until, withHosts, type ReplicatedDatabase } from './replicated.ts';
import { runCli } from './run-cli.ts';
import { TcpProxy, TcpProxyGroup } from './tcp-proxy.ts';
import { WorkerSupervisor, type SlotKind } from './workers.ts';
import { harnessQuery } from './query-once.ts';

const monitorQuery = harnessQuery('chaos-monitor');

export interface ChaosOptions {
  seconds: number;
  workers: number;
  accounts: number;
  clients: number;
  seed: number;
  /** Worker processes' BILLING_CONCURRENCY. */
  concurrency: number;
  duplicateShare: number;
  maxBacklog: number;
  drainSeconds: number;
  faults: Omit<FaultPlan, 'seconds'>;
  /** Run one worker with its clock this far off (libfaketime), e.g. '+3h'; '' for none. */
  faketimeOffset: string;
  /**
   * A primary and a synchronous standby instead of one server, failed over `faults.failovers`
   * times: a pair built by hand, or a pg_auto_failover formation. Their servers (and the proxies)
   * take free ports from `portBase` up, below the ephemeral range.
   */
  replicated?: { kind: 'pair' | 'pg_auto_failover'; portBase: number };
  keep: boolean;
  /** Progress lines (faults, phases). */
  log: (line: string) => void;
}

export function defaultOptions(seconds: number): Omit<ChaosOptions, 'log'> {
  return {
    seconds,
    workers: 4,
    accounts: 6,
    clients: 3,
    seed: Date.now() % 2 ** 31,
    concurrency: 100,
    duplicateShare: 0.15,
    maxBacklog: 1500,
    drainSeconds: 90,
    faults: {
      killEveryMs: seconds >= 120 ? 7000 : 3000,
      terminateEveryMs: 4000,
      pgRestarts: Math.max(1, Math.round(seconds / 75)),
      failovers: 0,
      pauses: Math.max(1, Math.floor(seconds / 60)),
      pauseMs: 4000,
      partitions: Math.max(1, Math.floor(seconds / 60)),
      partitionMs: seconds >= 60 ? 4000 : 2500,
      minKills: 0,
      untilCommitWindowHit: false,
      overtimeMs: 120_000,
    },
    faketimeOffset: '+3h',
    keep: false,
  };
}

export interface ChaosReport {
  checks: Check[];
  summary: string;
  violations: number;
  commands: number;
  lost: number;
  duplicatesApplied: number;
  deadlocks: number;
  /** How long after due the latest hold expiry committed (bound: 5 s, docs/guarantees.md). */
  latestExpiryLatenessMs: number;
  duplicateExecutionsAbsorbed: number;
  duplicateEnqueuesAbsorbed: number;
  faults: FaultStats;
  producer: ProducerStats;
  /** What the run's database was (and its URL, in failover runs). */
  database: string;
  faketime: { used: boolean; reason: string; measuredOffsetMs?: number; commandsDecided: number };
  workerExits: { killedByUs: number; fatal70: number; other: number };
  retriesLogged: number;
  unexpectedErrors: Record<string, number>;
  drainMs: number;
  workDir: string;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const { log } = options;
  const workDir = mkdtempSync(path.join(tmpdir(), 'pg-billing-chaos-'));
  const logDir = path.join(workDir, 'logs');
  mkdirSync(logDir);
  // One server of its own (crash restarts), or a replicated pair or formation (failovers).
  const replicatedPorts = options.replicated
    ? await freePortsFrom(options.replicated.portBase, options.replicated.kind === 'pair' ? 4 : 5)
    : [];
  const replicated: ReplicatedDatabase | undefined =
    options.replicated?.kind === 'pair'
      ? new ReplicatedPair([replicatedPorts[0]!, replicatedPorts[1]!])
      : options.replicated?.kind === 'pg_auto_failover'
        ? new PgAutoFailoverFormation([replicatedPorts[0]!, replicatedPorts[1]!, replicatedPorts[2]!])
        : undefined;
  const proxyPorts = replicatedPorts.slice(replicated instanceof ReplicatedPair ? 2 : 3);
  const port = replicated ? 0 : await freePort();
  const cluster = replicated
    ? undefined
    : new PostgresCluster({
        dataDir: path.join(workDir, 'pgdata'),
        port,
        initdbSync: false,
        settings: {
          max_connections: 300,
          // Commit times bound when each result was decided (model/reference-ledger.ts).
          track_commit_timestamp: true,
          // Throwaway data: a crash of PostgreSQL (not of the OS) loses nothing without fsync.
          fsync: false,
          log_min_messages: 'warning',
        },
      });
  const databaseName = 'billing_chaos';
  const random = seededRandom(options.seed);
  const faults = emptyFaultStats();
  const producer: ProducerStats = {
    enqueued: 0,
    duplicatesSent: 0,
    enqueueRetries: 0,
    inFlight: 0,
    commandsInFlight: 0,
  };
  let supervisor: WorkerSupervisor | undefined;
  let proxy: TcpProxy | TcpProxyGroup | undefined;
  // Results read on the primary right before each failover: each must be in the end as it was.
  const readBeforeFailovers: { id: string; seq: string; code: string; balances: string }[][] = [];
  let databaseDescription: string;
  try {
    if (cluster) {
      databaseDescription = `PostgreSQL on 127.0.0.1:${port}`;
      log(`work folder ${workDir}; ${databaseDescription}; seed ${options.seed}`);
      await cluster.start();
      const admin = new pg.Client({ connectionString: cluster.databaseUrl() });
      await admin.connect();
      await admin.query(`create database ${databaseName}`);
      await admin.end();
    } else {
      // `pg_autoctl show uri` names no user: like psql, every connection then takes PGUSER.
      if (options.replicated?.kind === 'pg_auto_failover') process.env.PGUSER ??= 'postgres';
      log(`work folder ${workDir}; starting ${replicated!.description}; seed ${options.seed}`);
      await replicated!.start(databaseName);
      databaseDescription = `${replicated!.description}; DATABASE_URL ${replicated!.url()}`;
      log(databaseDescription);
    }
    const databaseUrl = cluster ? cluster.databaseUrl(databaseName) : replicated!.url();
    await migrate({ connectionString: databaseUrl });
    const startedAt = (await monitorQuery<{ now: Date }>(databaseUrl, 'select now() as now'))[0]!.now;

    const faketime: Faketime = options.faketimeOffset
      ? await findFaketime(options.faketimeOffset)
      : { available: false, reason: 'not asked for' };
    if (!faketime.available) log(`faketime worker skipped: ${faketime.reason}`);
    const kinds: SlotKind[] = Array.from({ length: options.workers }, (_, i) =>
      i === 0 && faketime.available ? 'faketime' : i === 1 || (i === 0 && options.workers === 1) ? 'proxied' : 'plain',
    );
    let proxyUrl = databaseUrl;
    if (kinds.includes('proxied') && cluster) {
      const single = new TcpProxy('127.0.0.1', port);
      proxy = single;
      const proxyPort = await single.listen();
      proxyUrl = databaseUrl.replace(`:${port}/`, `:${proxyPort}/`);
      log(`proxy on 127.0.0.1:${proxyPort} for worker slot ${kinds.indexOf('proxied')}`);
    } else if (kinds.includes('proxied')) {
      // One proxy per host of the URL: the proxied worker follows the failovers through them.
      const hosts = parseDatabaseUrl(databaseUrl).hosts;
      const group = new TcpProxyGroup(hosts.map((host) => new TcpProxy(host.host, host.port)));
      proxy = group;
      const listening = await Promise.all(group.proxies.map((p, i) => p.listen(proxyPorts[i])));
      proxyUrl = withHosts(
        databaseUrl,
        listening.map((p) => `127.0.0.1:${p}`),
      );
      log(`proxies ${proxyUrl} for worker slot ${kinds.indexOf('proxied')}`);
    }
    supervisor = new WorkerSupervisor({
      kinds,
      logDir,
      databaseUrl: (kind) => (kind === 'proxied' ? proxyUrl : databaseUrl),
      env: {
        LOG_LEVEL: 'info',
        BILLING_HTTP_PORT: '0',
        BILLING_CONCURRENCY: String(options.concurrency),
        BILLING_RECOVERY_INTERVAL_MS: '1000',
      },
      // At debug the wrong-clock worker logs each command it decided (an applied command's line is
      // at debug): the check below counts them, so that a worker that did nothing proves nothing.
      ...(faketime.available ? { faketimeEnv: { ...faketime.env, LOG_LEVEL: 'debug' } } : {}),
      note: log,
    });
    supervisor.start();

    // The scene: accounts and their first money, before any fault.
    const commands = new Map<string, PlannedCommand>();
    const accounts = accountNames(options.accounts);
    const opening = openingCommands(accounts, `r${options.seed}`);
    for (const command of opening) commands.set(command.id, command);
    const setup = producerPool(databaseUrl);
    await enqueueUntilDone(setup, opening, producer);
    await setup.end();
    await waitFor(
      databaseUrl,
      opening.map((c) => c.id),
      60_000,
    );
    log(`${opening.length} opening commands done; load and faults for ${options.seconds} s`);

    // Backlog and deadlock statistics, sampled (PostgreSQL's statistics are lost in a crash).
    const monitor = startMonitor(databaseUrl, databaseName);
    let stopProducers = false;
    const producers = Array.from({ length: options.clients }, (_, i) =>
      runProducer(
        {
          databaseUrl,
          commands,
          stats: producer,
          duplicateShare: options.duplicateShare,
          batchSize: 20,
          maxBacklog: options.maxBacklog,
          backlog: () => monitor.backlog,
        },
        new CommandMix(seededRandom(options.seed + i + 1), accounts, `r${options.seed}-c${i}`),
        seededRandom(options.seed * 7 + i),
        () => stopProducers,
      ),
    );
    // The load runs for `seconds` and on while the schedule still owes faults (faults.minKills).
    const minimumLoad = sleep(options.seconds * 1000);
    await runFaults(
      {
        plan: { seconds: options.seconds, ...options.faults },
        cluster,
        ...(replicated
          ? {
              failover: (n: number) => failOver(replicated, n, producer, (rows) => readBeforeFailovers.push(rows)),
            }
          : {}),
        databaseUrl,
        databaseName,
        supervisor,
        proxy,
        random,
        beforeCrash: () => monitor.sample(),
        commitWindowHit: async () => {
          const repeated = repeatedCommands(supervisor!.logFiles);
          if (!repeated.size) return false;
          const rows = await monitorQuery<{ id: string; job_id: string | null }>(
            databaseUrl,
            'select id, job_id::text from billing.operations where id = any($1::text[])',
            [[...repeated.keys()]],
          );
          return rows.some((row) => row.job_id !== null && repeated.get(row.id)!.has(row.job_id));
        },
        note: log,
      },
      faults,
    ).catch((error: unknown) => {
      stopProducers = true;
      throw error;
    });
    await minimumLoad;
    stopProducers = true;
    await Promise.all(producers);
    log(`load over: ${commands.size} commands (${producer.enqueued} jobs enqueued); draining`);

    const drainStarted = Date.now();
    const drained = await drain(databaseUrl, [...commands.keys()], options.drainSeconds * 1000);
    const drainMs = Date.now() - drainStarted;
    log(drained ? `drained in ${drainMs} ms` : `NOT drained after ${drainMs} ms`);
    await monitor.sample();
    monitor.stop();

    const snapshot = await readSnapshot(databaseUrl);
    const result = runChecks({
      snapshot,
      commands,
      startedAt,
      databaseDown: faults.pgDownWindows,
    });
    const logs = scanWorkerLogs(
      supervisor.logFiles,
      new Map(snapshot.ops.map((op) => [op.id, op.job_id === null ? null : String(op.job_id)])),
    );

    const serverLog = cluster ? readFileSync(cluster.logFile, 'utf8') : replicated!.serverLog();
    const serverLogDeadlocks = (serverLog.match(/deadlock detected/g) ?? []).length;
    const deadlocks = Math.max(monitor.deadlocks, serverLogDeadlocks);
    const checks = [...result.checks];
    checks.push({
      name: 'no deadlocks (pg_stat_database, summed over crash restarts; server log)',
      figure: `pg_stat_database ${monitor.deadlocks}, server log ${serverLogDeadlocks}`,
      violations: deadlocks,
      // Which statements waited for which: the work folder is gone after a run, so the report keeps it.
      examples: deadlockReports(serverLog),
    });
    // A worker may exit only when we SIGKILL it, or with 70 when it cannot go on (PostgreSQL was
    // down when it started): a PostgreSQL restart is something it carries on through by itself.
    checks.push({
      name: 'no worker died of a fault it should have survived (every exit our SIGKILL or 70)',
      figure: `${supervisor.exits.other} other exits`,
      violations: supervisor.exits.other,
      examples: supervisor.crashes,
    });
    const replayProof = logs.absorbedAfterCommit > 0;
    checks.push({
      name: 'faults hit the window between commit and job completion (a job ran again after its command committed)',
      figure: `${logs.absorbedAfterCommit} re-executions absorbed, ${logs.absorbedDuplicateEnqueue} duplicate enqueues absorbed`,
      violations: replayProof ? 0 : 1,
      examples: replayProof
        ? []
        : [
            'no job re-ran after its commit: the run proves nothing about that window',
            // What to look at when this fails: were the workers' logs there to count from?
            `worker logs read: ${logs.filesRead} of ${logs.files} files, ${logs.lines} JSON lines`,
          ],
    });
    for (const pause of faults.pauses) {
      if (pause.handedOut > 0) {
        checks.push({
          name: 'a paused worker keeps its jobs',
          figure: `${pause.handedOut} of ${pause.jobsHeld} handed out`,
          violations: pause.handedOut,
          examples: [],
        });
      }
    }
    if (replicated)
      checks.push(...(await failoverChecks(replicated, options, faults.failovers, readBeforeFailovers, snapshot)));
    const faketimeInfo = {
      used: faketime.available,
      reason: faketime.available
        ? `LD_PRELOAD ${faketime.library}, FAKETIME=${options.faketimeOffset}`
        : faketime.reason,
      ...(logs.faketimeOffsetMs !== undefined ? { measuredOffsetMs: logs.faketimeOffsetMs } : {}),
      commandsDecided: logs.faketimeCommands,
    };
    if (faketime.available && logs.faketimeCommands === 0) {
      checks.push({
        name: 'the faketime worker decided commands',
        figure: '0',
        violations: 1,
        examples: ['the wrong-clock worker did no work: its check proves nothing'],
      });
    }
    const violations = checks.reduce((sum, c) => sum + c.violations, 0);
    const byType = new Map<string, number>();
    for (const command of commands.values()) byType.set(command.type, (byType.get(command.type) ?? 0) + 1);
    const summary =
      `commands ${commands.size} (${[...byType].map(([type, n]) => `${type} ${n}`).join(', ')}), kills ${faults.kills}, pg restarts ${faults.pgRestarts}, violations ${violations}, ` +
      `lost ${result.lost}, duplicates applied ${result.duplicatesApplied}, deadlocks ${deadlocks}, ` +
      `latest expiry ${result.latestExpiryLatenessMs} ms after due, ` +
      `duplicate executions absorbed ${logs.absorbedAfterCommit}`;
    return {
      checks,
      summary,
      violations,
      commands: commands.size,
      lost: result.lost,
      duplicatesApplied: result.duplicatesApplied,
      deadlocks,
      latestExpiryLatenessMs: result.latestExpiryLatenessMs,
      duplicateExecutionsAbsorbed: logs.absorbedAfterCommit,
      duplicateEnqueuesAbsorbed: logs.absorbedDuplicateEnqueue,
      faults,
      producer,
      database: databaseDescription,
      faketime: faketimeInfo,
      workerExits: { ...supervisor.exits },
      retriesLogged: logs.retries,
      unexpectedErrors: logs.unexpected,
      drainMs,
      workDir,
    };
  } finally {
    await supervisor?.stop().catch(() => {});
    await proxy?.close().catch(() => {});
    await cluster?.stop('fast').catch(() => {});
    await replicated?.stop().catch((error: unknown) => log(`could not stop the replicated database: ${String(error)}`));
    if (!options.keep) rmSync(workDir, { recursive: true, force: true });
    else log(`kept ${workDir} (worker logs in logs/, server log in pgdata/postgresql.log)`);
  }
}

async function waitFor(url: string, ids: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await monitorQuery<{ n: string }>(
      url,
      'select count(*) as n from billing.operations where id = any($1)',
      [ids],
    ).catch(() => [{ n: '0' }]);
    if (Number(rows[0]!.n) === ids.length) return;
    if (Date.now() > deadline) throw new Error(`opening commands not done after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/**
 * Until every command has its result and no billing job is locked, waiting for a retry, or due
 * within the longest hold expiry the mix asks for (so that the checks see every expiry applied).
 */
async function drain(url: string, ids: string[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await monitorQuery<{ missing: string; busy: string }>(
      url,
      `select
        (select count(*) from unnest($1::text[]) as i(id) where not exists (select 1 from billing.operations o where o.id = i.id)) as missing,
        (select count(*) from graphile_worker.jobs where task_identifier like 'billing/%'
           and attempts < max_attempts
           and (locked_at is not null or attempts > 0 or run_at <= now() + interval '10 seconds')) as busy`,
      [ids],
    ).catch(() => undefined);
    if (rows && rows[0]!.missing === '0' && rows[0]!.busy === '0') return true;
    if (Date.now() > deadline) return false;
    await sleep(250);
  }
}

function startMonitor(url: string, databaseName: string) {
  let backlog = 0;
  let deadlocksBefore = 0; // summed over crash epochs
  let deadlocksNow = 0;
  let stopped = false;
  const sample = async () => {
    const rows = await monitorQuery<{ backlog: string; deadlocks: string }>(
      url,
      `select
        (select count(*) from graphile_worker.jobs where task_identifier like 'billing/%' and run_at <= now()) as backlog,
        (select deadlocks from pg_stat_database where datname = $1) as deadlocks`,
      [databaseName],
    );
    backlog = Number(rows[0]!.backlog);
    const deadlocks = Number(rows[0]!.deadlocks ?? 0);
    // A crash resets the counter: what it showed before is carried over.
    if (deadlocks < deadlocksNow) deadlocksBefore += deadlocksNow;
    deadlocksNow = deadlocks;
  };
  void (async () => {
    while (!stopped) {
      await sample().catch(() => {});
      await sleep(250);
    }
  })();
  return {
    get backlog() {
      return backlog;
    },
    get deadlocks() {
      return deadlocksBefore + deadlocksNow;
    },
    sample,
    stop() {
      stopped = true;
    },
  };
}

interface LogScan {
  /** Worker log files read, of those there were, and the JSON lines in them. */
  filesRead: number;
  files: number;
  lines: number;
  absorbedAfterCommit: number;
  absorbedDuplicateEnqueue: number;
  retries: number;
  unexpected: Record<string, number>;
  faketimeCommands: number;
  faketimeOffsetMs: number | undefined;
}

/**
 * Reads the workers' JSON logs. A 'repeated command' line whose job id is the job id stored with the
 * result is a job that ran again after its command had committed: the window between a commit and
 * graphile-worker's completion of the job, hit by a fault.
 */
function scanWorkerLogs(files: { file: string; kind: SlotKind }[], jobOfResult: Map<string, string | null>): LogScan {
  const scan: LogScan = {
    filesRead: 0,
    files: files.length,
    lines: 0,
    absorbedAfterCommit: 0,
    absorbedDuplicateEnqueue: 0,
    retries: 0,
    unexpected: {},
    faketimeCommands: 0,
    faketimeOffsetMs: undefined,
  };
  for (const { file, kind } of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    scan.filesRead += 1;
    let lastTime: number | undefined;
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue;
      let entry: {
        msg?: string;
        command_id?: string;
        job_id?: string | number;
        time?: number;
        transient?: boolean;
        err?: { code?: string; message?: string };
        seq?: string;
      };
      try {
        entry = JSON.parse(line);
      } catch {
        continue; // the last line of a killed worker may be cut short
      }
      scan.lines += 1;
      if (typeof entry.time === 'number') lastTime = entry.time;
      if (entry.msg === 'repeated command: the first result stands' && entry.command_id) {
        if (String(entry.job_id) === jobOfResult.get(entry.command_id)) scan.absorbedAfterCommit += 1;
        else scan.absorbedDuplicateEnqueue += 1;
      }
      if (entry.msg === 'command failed, will retry') scan.retries += 1;
      if (entry.msg === 'command failed with an unexpected error, will retry') {
        const key = `${entry.err?.code ?? 'no code'}: ${(entry.err?.message ?? '').slice(0, 80)}`;
        scan.unexpected[key] = (scan.unexpected[key] ?? 0) + 1;
      }
      if (kind === 'faketime' && entry.seq !== undefined) scan.faketimeCommands += 1;
    }
    if (kind === 'faketime' && lastTime !== undefined) {
      // The file's modification time is the kernel's (real) clock at the last write.
      scan.faketimeOffsetMs ??= lastTime - statSync(file).mtimeMs;
    }
  }
  return scan;
}

/** The job ids of each command a worker logged as repeated (its first result stood), read so far. */
function repeatedCommands(files: { file: string }[]): Map<string, Set<string>> {
  const repeated = new Map<string, Set<string>>();
  for (const { file } of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      if (!line.includes('repeated command: the first result stands')) continue;
      try {
        const entry = JSON.parse(line) as { command_id?: string; job_id?: string | number };
        if (entry.command_id && entry.job_id !== undefined) {
          const jobs = repeated.get(entry.command_id) ?? new Set<string>();
          repeated.set(entry.command_id, jobs.add(String(entry.job_id)));
        }
      } catch {
        // the last line of a running worker may be cut short
      }
    }
  }
  return repeated;
}

/** Each "deadlock detected" of the server log with the lines that follow it (the processes, their statements). */
function deadlockReports(serverLog: string): string[] {
  const lines = serverLog.split('\n');
  const reports: string[] = [];
  lines.forEach((line, i) => {
    if (!line.includes('deadlock detected')) return;
    // A statement can be a few KB on one line: the start of each says which one it was.
    reports.push(
      lines
        .slice(i, i + 12)
        .map((l) => l.slice(0, 240))
        .join('\n   '),
    );
  });
  return reports;
}

/**
 * One failover under the run's load: the standby synchronous first, then what a client could have
 * been told (every result on the primary) read, the primary gone, and the time until the new
 * primary writes a result it did not have at its promotion. The standby is back when it resolves.
 */
async function failOver(
  database: ReplicatedDatabase,
  n: number,
  producer: ProducerStats,
  keep: (rows: { id: string; seq: string; code: string; balances: string }[]) => void,
): Promise<FailoverFigures> {
  await database.waitSynchronous();
  const before = await monitorQuery<{ id: string; seq: string; code: string; balances: string; jobs: string }>(
    database.primaryUrl(),
    `select o.id, o.seq::text, o.code, o.balances::text as balances,
       (select count(*) from graphile_worker.jobs where task_identifier like 'billing/%')::text as jobs
     from billing.operations o`,
  );
  // The kill waits (up to 5 s) for an enqueue on its way: its commit's outcome is then unknown to
  // the producer, which sends it again (producers pause while the backlog is full).
  for (let poll = 0; poll < 100 && producer.inFlight === 0; poll++) await sleep(50);
  const enqueuesInFlight = producer.inFlight;
  const commandsInEnqueuesInFlight = producer.commandsInFlight;
  keep(before);
  const event = await database.failOver(n);
  // The first result the new primary committed after its promotion, by commit timestamps (the
  // servers run on this machine's clock): a slow read right after the promotion cannot stretch it.
  const firstCommitAfter = async () => {
    const rows = await monitorQuery<{ first: Date | null }>(
      database.primaryUrl(),
      `select min(pg_xact_commit_timestamp(xmin)) as first from billing.operations
       where pg_xact_commit_timestamp(xmin) >= to_timestamp($1::float8 / 1000)`,
      [event.promotedAt],
    );
    return rows[0]?.first ?? undefined;
  };
  let stalledOn: string | undefined;
  const stallProbe = setTimeout(
    () => {
      // Why nothing comes yet: what the new primary's sessions wait on, and whom it waits for.
      void monitorQuery<{ waits: string }>(
        database.primaryUrl(),
        `select coalesce(string_agg(w, ', '), 'nothing') || '; synchronous_standby_names ' ||
         quote_literal(current_setting('synchronous_standby_names')) as waits
       from (select what || ' x' || count(*) as w
             from (select coalesce(wait_event_type || ':' || wait_event, state, backend_type) as what
                   from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()) as s
             group by what order by count(*) desc limit 6) as waits`,
      ).then(
        (rows) => (stalledOn = rows[0]?.waits),
        (error: Error) => (stalledOn = `(could not read: ${error.message})`),
      );
    },
    event.promotedAt + 5_000 - Date.now(),
  );
  const firstResult = await until('a new result on the new primary', firstCommitAfter, 120_000).finally(() =>
    clearTimeout(stallProbe),
  );
  const firstResultAfterPromotionMs = firstResult.getTime() - event.promotedAt;
  await database.restoreStandby();
  return {
    how: event.how,
    at: 0,
    enqueuesInFlight,
    commandsInEnqueuesInFlight,
    jobsWaiting: Number(before[0]?.jobs ?? 0),
    resultsRead: before.length,
    promotionMs: event.promotedAt - event.downFrom,
    firstResultAfterPromotionMs,
    stalledOn,
    downFrom: event.downFrom,
    downTo: event.promotedAt,
  };
}

/** The checks a failover run adds: nothing read before a failover lost, back within 10 s, billing verify. */
async function failoverChecks(
  database: ReplicatedDatabase,
  options: ChaosOptions,
  failovers: FailoverFigures[],
  readBefore: { id: string; seq: string; code: string; balances: string }[][],
  snapshot: Awaited<ReturnType<typeof readSnapshot>>,
): Promise<Check[]> {
  const checks: Check[] = [];
  const planned = options.faults.failovers;
  checks.push({
    name: 'every failover planned happened',
    figure: `${failovers.length} of ${planned}`,
    violations: failovers.length === planned ? 0 : 1,
    examples: [],
  });
  const now = new Map(snapshot.ops.map((op) => [op.id, op]));
  const lost: string[] = [];
  let read = 0;
  for (const rows of readBefore) {
    for (const row of rows) {
      read += 1;
      const op = now.get(row.id);
      const same =
        op &&
        String(op.seq) === row.seq &&
        op.code === row.code &&
        JSON.stringify(op.balances ?? null) === JSON.stringify(JSON.parse(row.balances));
      if (!same) lost.push(`${row.id} (seq ${row.seq}, ${row.code}) is ${op ? `seq ${op.seq}, ${op.code}` : 'gone'}`);
    }
  }
  checks.push({
    name: 'every result read on the primary before a failover is on the new one, unchanged',
    figure: `${read} results read before ${readBefore.length} failovers, ${lost.length} lost or changed`,
    violations: lost.length,
    examples: lost.slice(0, 5),
  });
  const slow = failovers.filter((f) => f.firstResultAfterPromotionMs > 10_000);
  checks.push({
    name: 'results flow again within 10 s of each promotion',
    figure: failovers.map((f) => `${(f.firstResultAfterPromotionMs / 1000).toFixed(1)} s`).join(', ') || 'no failover',
    violations: slow.length,
    examples: slow.map((f) => `${f.how} at ${f.at.toFixed(1)} s: ${f.firstResultAfterPromotionMs} ms`),
  });
  const verify = await runCli(['verify'], { DATABASE_URL: database.standbyFirstUrl() });
  checks.push({
    name: 'billing verify passes on a URL whose first host is the standby',
    figure: `exit ${verify.code}: ${verify.stdout.trim().split('\n').at(-1) ?? ''}`,
    violations: verify.code === 0 ? 0 : 1,
    examples: verify.code === 0 ? [] : [`${verify.stdout}${verify.stderr}`.slice(-2000)],
  });
  return checks;
}
