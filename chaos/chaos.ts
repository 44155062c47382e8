// `npm run chaos -- --seconds N --workers W --accounts A`: the bank test under faults. Starts its own
// PostgreSQL cluster (own port, own data folder under the temp folder), never the machine's server.
// `--failover`: a primary and a synchronous standby instead, failed over under the load (SIGKILL,
// promote, the dead one rebuilt as the standby); `--pg-auto-failover`: a pg_auto_failover formation,
// `pg_autoctl perform failover` then a killed primary node. Both need PostgreSQL's server binaries.
// Exit 0 when every check holds, 1 on any violation, 2 on bad arguments, 3 when the run itself broke.
import { Command, InvalidArgumentError } from 'commander';
import { whyNoPgAutoFailover } from './pg-auto-failover.ts';
import { whyNoReplicatedCluster } from './replicated-cluster.ts';
import { defaultOptions, runChaos, type ChaosReport } from './run.ts';

const whole = (min: number) => (value: string) => {
  if (!/^\d+$/.test(value) || Number(value) < min) throw new InvalidArgumentError(`a whole number >= ${min}`);
  return Number(value);
};

const program = new Command('chaos')
  .description(
    'Bank test: real worker processes, an at-least-once producer and a fault schedule ' +
      '(SIGKILL, pg_terminate_backend, PostgreSQL crash restarts, SIGSTOP, network partition, a worker with a wrong clock); ' +
      'then checks of the ledger in one snapshot. Exit 0: no violation; 1: violations; 2: bad usage.',
  )
  .option('--seconds <n>', 'seconds of load and faults', whole(5), 60)
  .option('--workers <n>', 'worker processes', whole(1), 4)
  .option('--accounts <n>', 'accounts (few: high contention)', whole(2), 6)
  .option('--clients <n>', 'producer connections', whole(1), 3)
  .option('--seed <n>', 'seed of the command mix and of the fault choices', whole(0))
  .option('--concurrency <n>', 'BILLING_CONCURRENCY of each worker', whole(1), 100)
  .option('--kill-every <ms>', 'mean time between SIGKILLs of a worker', whole(100))
  .option('--terminate-every <ms>', 'mean time between pg_terminate_backend rounds', whole(100), 4000)
  .option('--pg-restarts <n>', 'PostgreSQL crash restarts (default: one per 75 s, at least one)', whole(0))
  .option('--pauses <n>', 'SIGSTOP/SIGCONT of a worker holding jobs (default: one per 60 s, at least one)', whole(0))
  .option(
    '--partitions <n>',
    'blackhole/reset/latency cycles of the proxied worker (default: one per 60 s, at least one)',
    whole(0),
  )
  .option('--failover', 'a primary and a synchronous standby, failed over during the run (no crash restarts)', false)
  .option(
    '--pg-auto-failover',
    'a pg_auto_failover formation (monitor and two nodes): pg_autoctl perform failover, then a killed primary node',
    false,
  )
  .option(
    '--failovers <n>',
    'failovers in the run (default: one per 40 s, at least 1; --pg-auto-failover: 2)',
    whole(1),
  )
  .option('--port <n>', 'first port for the servers of --failover/--pg-auto-failover (below 32768)', whole(1024), 25440)
  .option('--faketime <offset>', "clock offset of one worker through libfaketime, '' for none", '+3h')
  .option(
    '--drain-seconds <n>',
    'how long the queue may take to drain after the load (default 90; 240 with failovers: a job failed 5 times waits e^5 = 148 s)',
    whole(1),
  )
  .option('--keep', 'keep the work folder (data, server log, worker logs)', false)
  .option('--json', 'print the report as JSON at the end', false);

program.exitOverride((error) => {
  process.exit(error.exitCode === 0 ? 0 : 2);
});
program.parse();
const o = program.opts<{
  seconds: number;
  workers: number;
  accounts: number;
  clients: number;
  seed?: number;
  concurrency: number;
  killEvery?: number;
  terminateEvery: number;
  pgRestarts?: number;
  pauses?: number;
  partitions?: number;
  faketime: string;
  failover: boolean;
  pgAutoFailover: boolean;
  failovers?: number;
  port: number;
  drainSeconds?: number;
  keep: boolean;
  json: boolean;
}>();

const base = defaultOptions(o.seconds);
const replicated = o.pgAutoFailover ? 'pg_auto_failover' : o.failover ? 'pair' : undefined;
if (replicated) {
  const why = replicated === 'pair' ? whyNoReplicatedCluster() : whyNoPgAutoFailover();
  if (why) {
    console.error(`chaos: cannot run ${o.pgAutoFailover ? '--pg-auto-failover' : '--failover'}: ${why}`);
    process.exit(3);
  }
}
const failovers = replicated
  ? (o.failovers ?? (replicated === 'pg_auto_failover' ? 2 : Math.max(1, Math.round(o.seconds / 40))))
  : 0;
// A stopped run still ends what it started: 'exit' handlers (the pg_auto_failover formation's
// keepers and servers) run on process.exit, not on a signal's default action.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
const started = Date.now();
const report = await runChaos({
  ...base,
  workers: o.workers,
  accounts: o.accounts,
  clients: o.clients,
  seed: o.seed ?? base.seed,
  concurrency: o.concurrency,
  drainSeconds: o.drainSeconds ?? (replicated ? 240 : 90),
  faketimeOffset: o.faketime,
  keep: o.keep,
  ...(replicated ? { replicated: { kind: replicated, portBase: o.port } } : {}),
  faults: {
    ...base.faults,
    killEveryMs: o.killEvery ?? base.faults.killEveryMs,
    terminateEveryMs: o.terminateEvery,
    // A failover run has no single server to crash-restart: its failovers take that place.
    pgRestarts: replicated ? 0 : (o.pgRestarts ?? base.faults.pgRestarts),
    failovers,
    pauses: o.pauses ?? base.faults.pauses,
    partitions: o.partitions ?? base.faults.partitions,
  },
  log: (line) => console.log(`# ${line}`),
}).catch((error: unknown) => {
  console.error('chaos run could not complete:', error);
  process.exit(3);
});
printReport(report, Date.now() - started);
if (o.json) console.log(JSON.stringify(report, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)));
process.exit(report.violations === 0 ? 0 : 1);

function printReport(r: ChaosReport, ms: number): void {
  console.log('');
  console.log(`database: ${r.database}`);
  for (const [i, f] of r.faults.failovers.entries()) {
    console.log(
      `failover ${i + 1} at ${f.at.toFixed(1)} s (${f.how}): in flight at the kill ${f.enqueuesInFlight} enqueue transactions ` +
        `(${f.commandsInEnqueuesInFlight} commands) and ${f.jobsWaiting} jobs queued or running; ${f.resultsRead} results read before; ` +
        `writable ${(f.promotionMs / 1000).toFixed(1)} s after the kill; first new result ${(f.firstResultAfterPromotionMs / 1000).toFixed(2)} s after the promotion` +
        (f.stalledOn ? `; 5 s after the promotion the new primary's sessions waited on ${f.stalledOn}` : ''),
    );
  }
  for (const check of r.checks) {
    console.log(
      `${check.violations === 0 ? 'ok  ' : 'FAIL'} ${check.name}: ${check.figure}${check.violations ? ` (${check.violations} violations)` : ''}`,
    );
    for (const example of check.examples) console.log(`       ${example}`);
  }
  console.log('');
  console.log(
    `faults: kills ${r.faults.kills} (${r.faults.killsMidTransaction} mid-transaction, ${r.faults.killsAtCommit} of them during the final writes-and-COMMIT round trip), pg crash restarts ${r.faults.pgRestarts} ` +
      `(down ${r.faults.pgDowntimeMs.join('/')} ms), backends terminated ${JSON.stringify(r.faults.backendsTerminated)}, ` +
      `pauses ${JSON.stringify(r.faults.pauses)}, partitions ${JSON.stringify(r.faults.partitions)}`,
  );
  console.log(
    `faketime worker: ${r.faketime.used ? `yes, ${r.faketime.reason}, clock measured ${((r.faketime.measuredOffsetMs ?? 0) / 3_600_000).toFixed(2)} h off, ${r.faketime.commandsDecided} commands decided` : `no (${r.faketime.reason})`}`,
  );
  console.log(
    `producer: ${r.producer.enqueued} jobs enqueued, ${r.producer.duplicatesSent} duplicate sends, ${r.producer.enqueueRetries} enqueue retries; ` +
      `worker exits: ${JSON.stringify(r.workerExits)}; transient failures retried ${r.retriesLogged}; unexpected errors ${JSON.stringify(r.unexpectedErrors)}`,
  );
  console.log(
    `duplicate enqueues absorbed ${r.duplicateEnqueuesAbsorbed}; drain ${r.drainMs} ms; run ${(ms / 1000).toFixed(1)} s`,
  );
  console.log(r.summary);
}
