import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TestDatabase } from './database.ts';

const cliMain = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface WorkerProcesses {
  /** Everything the workers logged so far (JSON lines at `logLevel` and above). */
  logs(): string;
  stop(): Promise<void>;
}

/** `billing worker` processes on the test database: separate processes, each its own batcher and pool. */
export function startWorkerProcesses(
  database: TestDatabase,
  count: number,
  env: Record<string, string> = {},
): WorkerProcesses {
  let logs = '';
  const children: ChildProcess[] = Array.from({ length: count }, () => {
    const child = spawn(process.execPath, [cliMain, 'worker'], {
      env: { ...process.env, DATABASE_URL: database.url, BILLING_HTTP_PORT: '0', LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (chunk: Buffer) => (logs += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (logs += chunk.toString()));
    return child;
  });
  return {
    logs: () => logs,
    async stop() {
      await Promise.all(
        children.map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              child.once('exit', () => resolve());
              child.kill('SIGTERM');
            }),
        ),
      );
    },
  };
}
