import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const cliPath = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
export const projectRoot = fileURLToPath(new URL('../..', import.meta.url));

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The environment of a spawned CLI: this one's, minus DATABASE_URL unless given, plus `env`. */
export function cliEnv(env: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const { DATABASE_URL: _unused, ...rest } = process.env;
  const merged: NodeJS.ProcessEnv = { ...rest, LOG_LEVEL: 'info' };
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) delete merged[key];
    else merged[key] = value;
  }
  return merged;
}

/**
 * Runs `node src/cli/main.ts ...args` to the end; the real exit code and output. The timeout is a
 * ceiling, not a window: at a load of 30 on 2 cores one CLI process took over 60 s to exit.
 */
export function runCli(args: string[], env: Record<string, string | undefined>, timeoutMs = 240_000): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], {
      cwd: projectRoot,
      env: cliEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`billing ${args.join(' ')} did not finish in ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A long-running CLI process (worker, start, watch) whose output is kept and can be waited on. */
export class CliProcess {
  readonly child: ChildProcess;
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #listeners = new Set<() => void>();
  #closed = false;

  constructor(args: string[], env: Record<string, string | undefined>) {
    this.child = spawn(process.execPath, [cliPath, ...args], {
      cwd: projectRoot,
      env: cliEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // A test process that ends without its teardown (an uncaught error) must not leave a worker behind.
    const killOnExit = () => this.child.kill('SIGKILL');
    process.once('exit', killOnExit);
    this.child.once('exit', () => process.off('exit', killOnExit));
    const collect = (chunk: Buffer) => {
      this.output += chunk.toString();
      for (const listener of this.#listeners) listener();
    };
    this.child.stdout!.on('data', collect);
    this.child.stderr!.on('data', collect);
    // 'close', not 'exit': a process can exit before the pipes have given us its last lines (a pino
    // line written at shutdown), and a test that reads the output after `exited` must see all of it.
    this.exited = new Promise((resolve) =>
      this.child.on('close', (code, signal) => {
        this.#closed = true;
        resolve({ code, signal });
        for (const listener of this.#listeners) listener();
      }),
    );
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the first match of `pattern` in the output; rejects on exit or timeout. */
  waitFor(pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const match = this.output.match(pattern);
        if (match) return done(() => resolve(match));
        if (this.#closed)
          return done(() => reject(new Error(`exited before ${pattern}:\n${this.output.slice(-4000)}`)));
      };
      const timer = setTimeout(
        () => done(() => reject(new Error(`no ${pattern} after ${timeoutMs} ms:\n${this.output.slice(-4000)}`))),
        timeoutMs,
      );
      const done = (settle: () => void) => {
        clearTimeout(timer);
        this.#listeners.delete(check);
        settle();
      };
      this.#listeners.add(check);
      check();
    });
  }

  /** JSON log lines (pino) written so far. */
  logs(): Record<string, unknown>[] {
    return this.output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  }

  async stop(
    signal: NodeJS.Signals = 'SIGTERM',
    timeoutMs = 30_000,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** `billing worker` on a database, HTTP on a free port; resolves once it serves, with that port. */
export async function startWorkerProcess(
  databaseUrl: string,
  env: Record<string, string | undefined> = {},
): Promise<{ worker: CliProcess; httpPort: number }> {
  const worker = new CliProcess(['worker'], {
    DATABASE_URL: databaseUrl,
    BILLING_HTTP_PORT: '0',
    BILLING_CONCURRENCY: '20',
    ...env,
  });
  const match = await worker.waitFor(/"http_port":(\d+)[^\n]*"msg":"worker started"/);
  return { worker, httpPort: Number(match[1]) };
}

/**
 * A test file's own migrated database with a `billing worker` process on it, stopped and dropped at
 * the end; `billing(...args)` runs the CLI against it.
 */
export async function cliOnWorkerDatabase(t: { teardown(fn: () => Promise<void>): void }, label: string) {
  const { createTestDatabase } = await import('./database.ts');
  const database = await createTestDatabase(label);
  const env = { DATABASE_URL: database.url };
  const { worker } = await startWorkerProcess(database.url);
  t.teardown(async () => {
    await worker.stop();
    await database.drop();
  });
  return { database, env, billing: (...args: string[]) => runCli(args, env) };
}
