// The failover chaos run at CI size (`npm run chaos -- --failover`, docs/guarantees.md): a primary
// and a synchronous standby of their own, worker processes and producers on the two-host URL, the
// usual faults, and one failover (SIGKILL of the primary, promotion, the dead one rebuilt as the
// standby) under the load; then every chaos check, those of the failover included. Skipped, with
// the reason, where PostgreSQL's server binaries are not installed.
import t from 'tap';
import { whyNoReplicatedCluster } from '../chaos/replicated-cluster.ts';
import { defaultOptions, runChaos } from '../chaos/run.ts';

const why = whyNoReplicatedCluster();
const seconds = 15;
const base = defaultOptions(seconds);
// Ceilings on a loaded machine; every wait ends as soon as what it waits for has happened.
t.setTimeout(900_000);

if (why) {
  t.plan(0, `skipped: ${why}`);
} else {
  t.test('a failover amid the chaos faults: nothing read before it lost, results again within 10 s', async (t) => {
    const lines: string[] = [];
    const report = await runChaos({
      ...base,
      workers: 3,
      accounts: 5,
      drainSeconds: 240,
      replicated: { kind: 'pair', portBase: Number(process.env.BILLING_TEST_PORT_BASE ?? 25420) + 40 },
      // As in test/chaos.test.ts: the schedule runs on until it has its kills and a re-run after a commit.
      faults: {
        ...base.faults,
        killEveryMs: 2000,
        pgRestarts: 0,
        failovers: 1,
        pauses: 1,
        partitions: 1,
        minKills: 3,
        untilCommitWindowHit: true,
      },
      log: (line) => lines.push(line),
    });
    for (const check of report.checks) {
      t.comment(`${check.violations ? 'FAIL' : 'ok'} ${check.name}: ${check.figure}`);
      for (const example of check.examples) t.comment(`   ${example}`);
    }
    t.comment(report.summary);
    t.comment(`faults:\n${lines.join('\n')}`);

    t.equal(report.faults.failovers.length, 1, 'the primary was killed and the standby promoted');
    const [failover] = report.faults.failovers;
    t.comment(
      `at the kill: ${failover?.enqueuesInFlight} enqueue transactions (${failover?.commandsInEnqueuesInFlight} commands) in flight, ` +
        `${failover?.jobsWaiting} jobs queued or running; first new result ${failover?.firstResultAfterPromotionMs} ms after the promotion`,
    );
    t.ok((failover?.resultsRead ?? 0) > 0, 'results were read on the primary before the kill');
    t.equal(report.lost, 0, 'every enqueued command has a result');
    t.equal(report.duplicatesApplied, 0, 'no command took effect twice');
    for (const check of report.checks) t.equal(check.violations, 0, check.name);
  });
}
