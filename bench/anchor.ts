import { readFileSync } from 'node:fs';
import { HostClient } from '../src/db/hosts.ts';
import { databaseSeconds, type BenchDatabase } from './database.ts';
import { cpuBetween, readCpu } from './cpu.ts';

/**
 * The performance anchor (docs/performance.md): plain-SQL transfers with no queue, one transaction per transfer,
 * exactly as bench/anchor/plain-transfer.sql writes them (a verbatim copy of the project's
 * anchor file, which is not part of this repository). Its setup makes its own `anchor` schema in the bench
 * database; each transfer sends the file's statements one by one, as `pgbench -n -f` does in its
 * default (simple) protocol, with :a and :b two different random account ids.
 */
export const anchorFile = new URL('./anchor/plain-transfer.sql', import.meta.url);
export const anchorConnections = 8;
export const anchorAccounts = 10_000;

export interface AnchorScript {
  setup: string[];
  transfer: string[];
}

/** Splits the file at its `-- one transfer` comment into setup and transfer statements. */
export function parseAnchor(text: string): AnchorScript {
  const marker = text.search(/^-- one transfer/m);
  if (marker < 0) throw new Error('the anchor file has no "-- one transfer" section');
  const statements = (part: string) =>
    part
      .split('\n')
      .filter((line) => !line.trimStart().startsWith('--'))
      .join('\n')
      .split(/;\s*$/m)
      .map((s) => s.trim())
      .filter(Boolean);
  return { setup: statements(text.slice(0, marker)), transfer: statements(text.slice(marker)) };
}

export function loadAnchor(): AnchorScript {
  return parseAnchor(readFileSync(anchorFile, 'utf8'));
}

/** Replaces pgbench's :a and :b (whole words only) with the given account ids. */
export function bindTransfer(statements: string[], a: number, b: number): string[] {
  return statements.map((s) => s.replace(/:a\b/g, String(a)).replace(/:b\b/g, String(b)));
}

export interface AnchorFigures {
  rate: number;
  transfers: number;
  /** begin to commit on the client, per transfer. */
  p50Ms: number;
  p99Ms: number;
  /** PostgreSQL CPU of the anchor's own connections, per transfer. */
  pgCpuUsPerTransfer: number;
}

/** Runs the anchor's setup once on the bench database. */
export async function setUpAnchor(bench: BenchDatabase, script: AnchorScript = loadAnchor()): Promise<void> {
  const client = new HostClient({ connectionString: bench.url });
  await client.connect();
  try {
    await client.query('drop schema if exists anchor cascade');
    for (const statement of script.setup) await client.query(statement);
    await client.query('analyze anchor.accounts');
  } finally {
    await client.end();
  }
}

/** `connections` clients sending anchor transfers back to back for `seconds`. */
export async function runAnchor(
  bench: BenchDatabase,
  seconds: number,
  script: AnchorScript = loadAnchor(),
  connections = anchorConnections,
): Promise<AnchorFigures> {
  const clients = await Promise.all(
    Array.from({ length: connections }, async () => {
      const client = new HostClient({ connectionString: bench.url, application_name: 'pg-billing-bench-anchor' });
      await client.connect();
      return client;
    }),
  );
  try {
    const durations: number[] = [];
    let transfers = 0;
    const started = await databaseSeconds(bench.pool);
    const before = await readCpu(bench);
    const deadline = performance.now() + seconds * 1000;
    await Promise.all(
      clients.map(async (client) => {
        while (performance.now() < deadline) {
          const a = 1 + Math.floor(Math.random() * anchorAccounts);
          let b = 1 + Math.floor(Math.random() * (anchorAccounts - 1));
          if (b >= a) b += 1;
          const t0 = performance.now();
          for (const statement of bindTransfer(script.transfer, a, b)) await client.query(statement);
          durations.push(performance.now() - t0);
          transfers += 1;
        }
      }),
    );
    const ended = await databaseSeconds(bench.pool);
    const used = cpuBetween(before, await readCpu(bench)).get('pg:pg-billing-bench-anchor') ?? 0;
    durations.sort((x, y) => x - y);
    const pick = (q: number) => durations[Math.min(durations.length - 1, Math.floor(q * durations.length))] ?? NaN;
    return {
      rate: transfers / (ended - started),
      transfers,
      p50Ms: pick(0.5),
      p99Ms: pick(0.99),
      pgCpuUsPerTransfer: (used * 1e6) / transfers,
    };
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
  }
}
