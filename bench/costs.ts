import { cpuBetween, readCpu, type CpuReading } from './cpu.ts';
import { highestSeq, type BenchDatabase } from './database.ts';

/** What one command cost inside a measuring window (docs/performance.md, where the time goes). */
export interface Costs {
  commands: number;
  /** CPU microseconds per command, per group: `pg:<application_name>` backends and `worker`. */
  cpuUsPerCommand: Record<string, number>;
  /** Ledger transactions (distinct transaction start times among the window's result rows). */
  batches: number;
  commandsPerBatch: number;
  /** Commits of every connection of the bench database (pg_stat_database; its counters lag up to 1 s). */
  commitsPerCommand: number;
}

export interface CostProbe {
  start(): Promise<void>;
  stop(): Promise<Costs>;
}

/** Readings at both edges of a window: CPU of backends and workers, commits, and result rows. */
export function costProbe(bench: BenchDatabase, workerPids: () => number[]): CostProbe {
  let cpu0: CpuReading = new Map();
  let commits0 = 0;
  let seq0 = 0;
  return {
    async start() {
      seq0 = await highestSeq(bench.pool);
      commits0 = await commits(bench);
      cpu0 = await readCpu(bench, workerPids());
    },
    async stop() {
      const cpu1 = await readCpu(bench, workerPids());
      const commits1 = await commits(bench);
      const seq1 = await highestSeq(bench.pool);
      // A batch's rows share created_at (now(), the transaction's start): distinct values count transactions.
      const { rows } = await bench.pool.query<{ commands: number; batches: number }>(
        `select count(*)::int as commands, count(distinct created_at)::int as batches
         from billing.operations where seq > $1 and seq <= $2`,
        [seq0, seq1],
      );
      const { commands, batches } = rows[0]!;
      const perCommand = (x: number) => (commands ? x / commands : NaN);
      const cpuUsPerCommand: Record<string, number> = {};
      for (const [group, seconds] of [...cpuBetween(cpu0, cpu1)].sort())
        cpuUsPerCommand[group] = perCommand(seconds * 1e6);
      return {
        commands,
        cpuUsPerCommand,
        batches,
        commandsPerBatch: batches ? commands / batches : NaN,
        commitsPerCommand: perCommand(commits1 - commits0),
      };
    },
  };
}

async function commits(bench: BenchDatabase): Promise<number> {
  const { rows } = await bench.pool.query<{ n: string }>(
    'select xact_commit::text as n from pg_stat_database where datname = current_database()',
  );
  return Number(rows[0]!.n);
}
