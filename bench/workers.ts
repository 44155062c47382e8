import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchDatabase } from './database.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const cliMain = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const benchWorker = fileURLToPath(new URL('./worker-process.ts', import.meta.url));

/**
 * The V8 limits a worker runs with where it is deployed (Dockerfile `ENV NODE_OPTIONS`; test/bench.test.ts
 * checks the two agree), so the bench measures memory and speed as deployed. Without them V8 lets the
 * old generation grow to ~300 MB under load although the live heap is ~33 MB. 8 MB semi-spaces, not
 * 2: with 2 the young generation filled so often that GC was a third of a worker's busy time, and
 * 8 bought ~12% throughput for ~10 MB (bench/LOG.md).
 */
export const deployedNodeOptions = '--max-old-space-size=128 --max-semi-space-size=8';

/**
 * glibc's malloc gives each thread that allocates an arena of its own (Node has several: libuv's
 * pool, V8's platform workers); two arenas cut a worker's peak RSS by ~10 MB at no measured cost.
 * Dockerfile `ENV MALLOC_ARENA_MAX`, checked equal by test/bench.test.ts like NODE_OPTIONS.
 */
export const deployedMallocArenaMax = '2';

const startTimeoutMs = 180_000;

export interface WorkerFleet {
  /** The worker processes (the CLI's own pid; bench/cpu.ts adds its children). */
  pids(): number[];
  /** Peak resident set (VmHWM) of each worker process and its children, in bytes. */
  peakRss(): number[];
  stop(): Promise<void>;
}

/**
 * Starts `count` worker processes on the bench database: `billing worker` when the CLI exists,
 * else bench/worker-process.ts (the same startWorker call). `noop` ones run the queue ceiling's task.
 * The environment passes through, so BILLING_* settings apply to the bench as to the service.
 */
export async function startWorkers(
  bench: BenchDatabase,
  count: number,
  mode: 'real' | 'noop',
  env: Record<string, string>,
): Promise<WorkerFleet> {
  const args = mode === 'real' && existsSync(cliMain) ? [cliMain, 'worker'] : [benchWorker, mode];
  const children: ChildProcess[] = [];
  const failures: string[] = [];
  let noopReady = 0;
  for (let i = 0; i < count; i++) {
    const child = spawn(process.execPath, args, {
      cwd: root,
      env: { ...process.env, DATABASE_URL: bench.url, BILLING_HTTP_PORT: '0', ...env },
      stdio: ['ignore', mode === 'noop' ? 'pipe' : 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    child.on('exit', (code, signal) => {
      if (!stopping) failures.push(`worker ${child.pid} exited (${code ?? signal}): ${stderr}`);
    });
    if (mode === 'noop') {
      let said = false;
      child.stdout!.on('data', (chunk: Buffer) => {
        if (!said && chunk.toString().includes('ready')) {
          said = true;
          noopReady += 1;
        }
      });
    }
    children.push(child);
  }
  let stopping = false;
  // A safety net, not a measurement: a worker that exits is reported at once (failures); on a
  // heavily loaded 2-core machine loading the modules alone has taken more than 30 s.
  const deadline = Date.now() + startTimeoutMs;
  // Ready: a no-op process said so; a real one registered its liveness row (before it can lock any job).
  const ready = async () =>
    mode === 'noop'
      ? noopReady
      : (await bench.pool.query<{ n: number }>('select count(distinct os_pid)::int as n from billing.worker_liveness'))
          .rows[0]!.n;
  while ((await ready()) < count && !failures.length && Date.now() <= deadline) await sleep(100);
  if (failures.length || Date.now() > deadline) {
    for (const child of children) child.kill('SIGKILL');
    throw new Error(`workers did not start: ${failures.join('\n') || 'timeout'}`);
  }
  return {
    pids: () => children.map((child) => child.pid!),
    peakRss: () => children.map((child) => treePeakRss(child.pid!)),
    async stop() {
      stopping = true;
      await Promise.all(
        children.map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
              child.once('exit', () => {
                clearTimeout(timer);
                resolve();
              });
              child.kill('SIGTERM');
            }),
        ),
      );
    },
  };
}

/** The largest VmHWM in a process tree (a CLI that forks its worker counts its child). */
function treePeakRss(pid: number): number {
  let peak = vmHwm(pid);
  for (const child of childPids(pid)) peak = Math.max(peak, treePeakRss(child));
  return peak;
}

function vmHwm(pid: number): number {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function childPids(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((task) =>
      readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}
