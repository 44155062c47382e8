import pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import { resultsChannel } from '../src/ledger/apply.ts';
import { databaseSeconds, highestSeq, type BenchDatabase } from './database.ts';
import { drain } from './throughput.ts';
import { randomTransfer } from './workload.ts';

export interface LatencyFigures {
  targetRate: number;
  achievedRate: number;
  samples: number;
  enqueued: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Enqueue to the start of the applying transaction (operations.created_at): the queue's share. */
  pickupP50Ms: number;
  pickupP99Ms: number;
}

/**
 * Enqueues single transfer jobs (one add_job, one transaction each, as an application does) at a
 * steady `rate`, and times each from its enqueue to the moment a client sees its committed result:
 * a listener on billing_results that reads new results by cursor on every notification. Both ends
 * are clock_timestamp() of the database, so the figure has one clock.
 */
export async function latencyAt(bench: BenchDatabase, rate: number, seconds: number, prefix: string): Promise<LatencyFigures> {
  const enqueuedAt = new Map<string, number>();
  const seenAt = new Map<string, number>();
  const startedAt = new Map<string, number>();
  const seq0 = await highestSeq(bench.pool);
  const observer = await observe(bench, seq0, (id, at, transactionStart) => {
    if (!id.startsWith(prefix)) return;
    seenAt.set(id, at);
    startedAt.set(id, transactionStart);
  });
  const senders = new pg.Pool({ connectionString: bench.url, max: 16, application_name: 'pg-billing-bench-enqueue' });
  senders.on('error', () => {});
  let sent = 0;
  let inFlight = 0;
  const started = performance.now();
  const dbStarted = await databaseSeconds(bench.pool);
  const pending: Promise<void>[] = [];
  while (performance.now() - started < seconds * 1000) {
    const due = Math.floor(((performance.now() - started) / 1000) * rate) - sent;
    // Paced, not flooded: if the database falls behind the enqueues, the sender waits with it.
    for (let i = 0; i < due && inFlight < 64; i++) {
      const id = `${prefix}${sent++}`;
      inFlight += 1;
      pending.push(senders.query<{ t: number }>(
        `select extract(epoch from clock_timestamp())::float8 as t
         from graphile_worker.add_job('billing/transfer', json_build_object('id', $1::text, 'from', $2::text, 'to', $3::text, 'amount', $4::text))`,
        [id, ...Object.values(randomTransfer(bench.accounts))]).then(({ rows }) => {
        enqueuedAt.set(id, rows[0]!.t);
      }).finally(() => { inFlight -= 1; }));
    }
    await sleep(1);
  }
  await Promise.all(pending);
  const dbEnded = await databaseSeconds(bench.pool);
  await drain(bench, seq0, sent);
  await observer.catchUp();
  await observer.close();
  await senders.end();
  const latencies = [...enqueuedAt].flatMap(([id, at]) => {
    const seen = seenAt.get(id);
    return seen === undefined ? [] : [(seen - at) * 1000];
  }).sort((a, b) => a - b);
  const pick = (q: number, sorted = latencies) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  // Enqueue to the start of the transaction that applied the command: the queue's share.
  const pickups = [...enqueuedAt].flatMap(([id, at]) => {
    const started = startedAt.get(id);
    return started === undefined ? [] : [(started - at) * 1000];
  }).sort((a, b) => a - b);
  return {
    targetRate: rate,
    achievedRate: sent / (dbEnded - dbStarted),
    samples: latencies.length,
    enqueued: sent,
    p50Ms: pick(0.5),
    p99Ms: pick(0.99),
    maxMs: latencies.at(-1) ?? NaN,
    pickupP50Ms: pick(0.5, pickups),
    pickupP99Ms: pick(0.99, pickups),
  };
}

interface Observer {
  catchUp(): Promise<void>;
  close(): Promise<void>;
}

/** A results reader as the client runs one: LISTEN for the wake-up, then read by cursor. */
async function observe(bench: BenchDatabase, seq0: number, onResult: (id: string, at: number, transactionStart: number) => void): Promise<Observer> {
  const client = new pg.Client({ connectionString: bench.url, application_name: 'pg-billing-bench-observer' });
  await client.connect();
  let cursor = String(seq0);
  let reading: Promise<void> | undefined;
  let again = false;
  const read = async (): Promise<void> => {
    do {
      again = false;
      const { rows } = await client.query<{ id: string; seq: string; t: number; c: number }>(
        `select id, seq::text, extract(epoch from clock_timestamp())::float8 as t, extract(epoch from created_at)::float8 as c
         from billing.operations where seq > $1 order by seq`, [cursor]);
      for (const row of rows) onResult(row.id, row.t, row.c);
      if (rows.length) cursor = rows.at(-1)!.seq;
    } while (again);
  };
  const wake = () => {
    if (reading) { again = true; return; }
    reading = read().finally(() => { reading = undefined; });
  };
  client.on('notification', wake);
  await client.query(`listen ${resultsChannel}`);
  // A notification is a hint; a slow poll makes sure nothing waits on a missed one.
  const poll = setInterval(wake, 250);
  return {
    async catchUp() {
      wake();
      while (reading) await reading;
      await read();
    },
    async close() {
      clearInterval(poll);
      await client.end();
    },
  };
}
