import { readFileSync, readdirSync } from 'node:fs';
import type { BenchDatabase } from './database.ts';

/**
 * CPU time of processes, from /proc/<pid>/stat (utime + stime), grouped: PostgreSQL backends of the
 * bench database by their application_name (the worker's ledger pool, its queue pool, the load
 * generator, the anchor) and the worker processes. The server is on this machine, so its backends'
 * /proc entries are readable; nothing is configured or restarted on it. A backend that ends inside a
 * window loses its share (pools keep their connections under load, so that is rare).
 */
export type CpuReading = Map<number, { group: string; seconds: number }>;

const ticksPerSecond = 100; // USER_HZ on Linux

export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime and stime are fields 14 and 15.
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
  } catch {
    return undefined;
  }
}

/** A process and all its descendants (a CLI that forks its worker counts its child). */
export function processTree(pid: number): number[] {
  const children = (() => {
    try {
      return readdirSync(`/proc/${pid}/task`).flatMap((task) =>
        readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
      );
    } catch {
      return [];
    }
  })();
  return [pid, ...children.flatMap(processTree)];
}

/** One reading of every backend of the bench database and of the given worker processes. */
export async function readCpu(bench: BenchDatabase, workerPids: number[] = []): Promise<CpuReading> {
  const { rows } = await bench.pool.query<{ pid: number; app: string }>(
    `select pid, application_name as app from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`,
  );
  const reading: CpuReading = new Map();
  for (const { pid, app } of rows) {
    const seconds = processCpuSeconds(pid);
    if (seconds !== undefined) reading.set(pid, { group: `pg:${app || 'other'}`, seconds });
  }
  for (const pid of workerPids.flatMap(processTree)) {
    const seconds = processCpuSeconds(pid);
    if (seconds !== undefined) reading.set(pid, { group: 'worker', seconds });
  }
  return reading;
}

/** CPU seconds used between two readings, per group. */
export function cpuBetween(before: CpuReading, after: CpuReading): Map<string, number> {
  const used = new Map<string, number>();
  for (const [pid, { group, seconds }] of after) {
    used.set(group, (used.get(group) ?? 0) + seconds - (before.get(pid)?.seconds ?? 0));
  }
  return used;
}
