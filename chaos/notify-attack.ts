// The NOTIFY-queue attack, shared by chaos/notify-queue.ts and test/notify-queue.test.ts: a listener
// that sits in an open transaction pins PostgreSQL's notification queue, and a second session
// fills it with notifications of almost a page each (8 KB pages: one notification per page).
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';

export const attackChannel = 'pin';
const pagePayload = 'x'.repeat(7_900);

/** LISTENs, then opens a transaction and stays in it: from now on the queue's tail cannot pass it. */
export async function pinQueue(session: pg.Client): Promise<void> {
  await session.query(`listen ${attackChannel}`);
  await session.query('begin');
  await session.query('select 1');
}

/**
 * Sends page-sized notifications, `perStatement` at a time, until PostgreSQL refuses one with "too
 * many notifications in the NOTIFY queue" (`full`), or `most` have gone in, or `stop()` says so
 * (the pinning session was ended meanwhile: the queue will not fill).
 */
export async function fillQueue(
  filler: pg.Client,
  options: { most?: number; perStatement?: number; stop?: () => boolean } = {},
): Promise<{ sent: number; full: boolean }> {
  const { most = Number.POSITIVE_INFINITY, perStatement = 1, stop = () => false } = options;
  let sent = 0;
  while (sent < most && !stop()) {
    const count = Math.min(perStatement, most - sent);
    try {
      // Distinct payloads: PostgreSQL folds identical notifications of one transaction into one.
      await filler.query('select pg_notify($1, $2 || g) from generate_series(1, $3::int) as g', [
        attackChannel,
        pagePayload,
        count,
      ]);
    } catch (error) {
      if (error instanceof Error && /too many notifications in the NOTIFY queue/.test(error.message))
        return { sent, full: true };
      throw error;
    }
    sent += count;
  }
  return { sent, full: false };
}

/** Resolves when `session`'s connection ends (ended by the server: the watchdog, or by us). */
export function sessionEnded(session: pg.Client): Promise<void> {
  return new Promise((resolve) => {
    session.on('error', () => {});
    session.once('end', () => resolve());
  });
}

/** A `billing worker` process for the chaos scripts; its /metrics port is read from its log. */
export async function spawnWorker(
  databaseUrl: string,
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; output: () => string; metric: (pattern: RegExp) => Promise<number> }> {
  const cli = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
  const child = spawn(process.execPath, [cli, 'worker'], {
    env: { ...process.env, DATABASE_URL: databaseUrl, BILLING_HTTP_PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  process.once('exit', () => child.kill('SIGKILL'));
  let output = '';
  const port = await new Promise<number>((resolve, reject) => {
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      const match = output.match(/"http_port":(\d+)[^\n]*"msg":"worker started"/);
      if (match) resolve(Number(match[1]));
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    child.once('exit', () => reject(new Error(`the worker exited:\n${output.slice(-2000)}`)));
  });
  return {
    child,
    output: () => output,
    metric: async (pattern) =>
      Number((await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).match(pattern)?.[1] ?? NaN),
  };
}

/** p50 and p99 of a list of milliseconds. */
export function percentiles(ms: number[]): { p50: number; p99: number } {
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { p50: at(0.5), p99: at(0.99) };
}
