// The worker processes of a chaos run and their supervisor: a fixed number of slots, each always
// running one worker process; when one dies (killed by the run, or exiting 70 because it lost its
// liveness registration) a fresh one takes its slot, as a process manager would do.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const workerEntry = fileURLToPath(new URL('./worker-process.ts', import.meta.url));

export type SlotKind = 'plain' | 'proxied' | 'faketime';

export interface WorkerProcess {
  slot: number;
  kind: SlotKind;
  generation: number;
  child: ChildProcess;
  pid: number;
  logFile: string;
  paused: boolean;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface SupervisorOptions {
  /** Where each worker connects, by kind. */
  databaseUrl: (kind: SlotKind) => string;
  kinds: SlotKind[];
  logDir: string;
  /** Extra environment of every worker (BILLING_*). */
  env: NodeJS.ProcessEnv;
  /** LD_PRELOAD and FAKETIME for the faketime slot. */
  faketimeEnv?: NodeJS.ProcessEnv;
  /** Told of every exit the supervisor did not cause. */
  note?: (line: string) => void;
}

export interface ExitCounts {
  killedByUs: number;
  fatal70: number;
  other: number;
}

export class WorkerSupervisor {
  readonly #options: SupervisorOptions;
  readonly #slots: (WorkerProcess | undefined)[];
  readonly #generations: number[];
  readonly #killed = new Set<number>();
  readonly logFiles: { file: string; kind: SlotKind }[] = [];
  readonly exits: ExitCounts = { killedByUs: 0, fatal70: 0, other: 0 };
  /** Each exit counted in `other`: the worker, its code or signal and the last lines of its log. */
  readonly crashes: string[] = [];
  #stopping = false;

  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.#slots = options.kinds.map(() => undefined);
    this.#generations = options.kinds.map(() => 0);
  }

  start(): void {
    for (let slot = 0; slot < this.#slots.length; slot++) this.#spawn(slot);
  }

  get workers(): WorkerProcess[] {
    return this.#slots.filter((w): w is WorkerProcess => w !== undefined);
  }

  #spawn(slot: number): void {
    const kind = this.#options.kinds[slot]!;
    const generation = ++this.#generations[slot]!;
    const logFile = path.join(this.#options.logDir, `worker-${slot}-${kind}-${generation}.log`);
    const fd = openSync(logFile, 'a');
    const child = spawn(process.execPath, [workerEntry], {
      env: {
        ...process.env,
        ...this.#options.env,
        ...(kind === 'faketime' ? this.#options.faketimeEnv : {}),
        DATABASE_URL: this.#options.databaseUrl(kind),
      },
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    this.logFiles.push({ file: logFile, kind });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    const worker: WorkerProcess = { slot, kind, generation, child, pid: child.pid!, logFile, paused: false, exited };
    this.#slots[slot] = worker;
    void exited.then(({ code, signal }) => {
      if (this.#killed.delete(worker.pid)) this.exits.killedByUs += 1;
      else if (code === 70) this.exits.fatal70 += 1;
      else if (!this.#stopping) {
        this.exits.other += 1;
        // The worker logs JSON lines; what Node prints when a process dies of an uncaught error
        // (the stack, then the error's fields) is not JSON: keep all of it, or else the last lines.
        const lines = readFileSync(logFile, 'utf8').trimEnd().split('\n');
        const crashReport = lines.slice(-80).filter((line) => !line.startsWith('{'));
        const tail = (crashReport.length > 0 ? crashReport : lines.slice(-6)).join('\n');
        this.crashes.push(`worker ${slot} (${kind}, pid ${worker.pid}) exited ${code ?? signal}:\n${tail}`);
      }
      if (code !== null && !this.#stopping)
        this.#options.note?.(`worker ${slot} (${kind}, pid ${worker.pid}) exited ${code}; see ${logFile}`);
      if (this.#slots[slot] === worker) this.#slots[slot] = undefined;
      // A worker that cannot start (PostgreSQL down) exits 70 at once: restart it a little later.
      if (!this.#stopping)
        setTimeout(
          () => {
            if (!this.#stopping && !this.#slots[slot]) this.#spawn(slot);
          },
          code === 70 ? 300 : 50,
        );
    });
  }

  /** SIGKILL: no cleanup of any kind, the way a crash or the OOM killer ends a process. */
  kill(worker: WorkerProcess): void {
    this.#killed.add(worker.pid);
    if (worker.paused) this.resume(worker);
    worker.child.kill('SIGKILL');
  }

  pause(worker: WorkerProcess): void {
    worker.paused = true;
    worker.child.kill('SIGSTOP');
  }

  resume(worker: WorkerProcess): void {
    worker.paused = false;
    worker.child.kill('SIGCONT');
  }

  /** Graceful stop of every worker (SIGTERM), then SIGKILL for any that hang. */
  async stop(): Promise<void> {
    this.#stopping = true;
    const running = this.workers;
    for (const w of running) {
      if (w.paused) this.resume(w);
      w.child.kill('SIGTERM');
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(running.map((w) => w.exited)),
      new Promise((resolve) => {
        timer = setTimeout(resolve, 15_000);
      }),
    ]);
    clearTimeout(timer);
    for (const w of running) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
  }
}

/**
 * The local TCP ports of a process's sockets (Linux /proc), so that a backend in pg_stat_activity
 * (client_port) can be traced to the worker process that opened it.
 */
export function localPortsOf(pid: number): Set<number> {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        const match = /^socket:\[(\d+)\]$/.exec(target);
        if (match) inodes.add(match[1]!);
      } catch {
        // the descriptor closed meanwhile
      }
    }
  } catch {
    return new Set();
  }
  const ports = new Set<number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(table)) continue;
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || !inodes.has(fields[9]!)) continue;
      ports.add(Number.parseInt(fields[1]!.split(':')[1]!, 16));
    }
  }
  return ports;
}
