import pg from 'pg';
import { HostClient } from '../src/db/hosts.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { resultsChannel } from '../src/ledger/apply.ts';
import type { CostProbe, Costs } from './costs.ts';
import { databaseSeconds, highestSeq, type BenchDatabase } from './database.ts';
import { drain } from './throughput.ts';
import { randomTransfer } from './workload.ts';

export interface LatencyFigures {
  targetRate: number;
  achievedRate: number;
  samples: number;
  /** Every command the phase enqueued, the warm-up's included (the ledger check counts them all). */
  enqueued: number;
  /** Seconds at the same rate before the measured window, whose commands are not timed. */
  warmupSeconds: number;
  /** add_jobs calls made (one transaction, one NOTIFY each). */
  calls: number;
  /** Latest a call started after its 10 ms tick was due: the generator's own lag. */
  maxSendLagMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /**
   * The three parts of each command's latency, p50 and p99 of each, in ms: `pickup` enqueue ->
   * start of the batch transaction that applied it (the enqueue's commit, jobs:insert NOTIFY, the
   * fetch, the wait in the batcher); `batch` -> the reader gets the batch's notification (the
   * transaction, its lock waits and its commit); `read` -> the reader has the row (its query).
   */
  parts: Record<'pickup' | 'batch' | 'read', { p50Ms: number; p99Ms: number }>;
  /** What a command cost while the generator sent (set when a cost probe watched). */
  costs?: Costs;
}

const tickMs = 10;
const senderConnections = 2;

/**
 * Generates a steady `rate` as an application fleet does, without letting the generator be the
 * limit: every 10 ms the commands that have come due are enqueued with ONE add_jobs call (one
 * transaction and one NOTIFY per call, not per command: notifying commits serialize on one global
 * lock in PostgreSQL, so an add_job per command could not even reach the rate). Each command is
 * timed from the start of its enqueueing statement (statement_timestamp(), the database clock in
 * that same statement) to the moment a client sees its committed result: a listener on
 * billing_results that reads new results by cursor on every notification and stamps each row with
 * clock_timestamp(). One clock for both ends; the figure includes the enqueue's own commit, the
 * queue's pickup, the batch and its commit, and the notification to the reader.
 */
export async function latencyAt(
  bench: BenchDatabase,
  rate: number,
  seconds: number,
  prefix: string,
  probe?: CostProbe,
  warmupSeconds = 1,
): Promise<LatencyFigures> {
  const enqueuedAt = new Map<string, number>();
  const seenAt = new Map<string, number>();
  const startedAt = new Map<string, number>();
  const seqOf = new Map<string, number>();
  const seq0 = await highestSeq(bench.pool);
  const observer = await observe(bench, seq0, (id, seq, at, transactionStart) => {
    if (!id.startsWith(prefix)) return;
    seenAt.set(id, at);
    startedAt.set(id, transactionStart);
    seqOf.set(id, seq);
  });
  const senders = new pg.Pool({
    Client: HostClient,
    connectionString: bench.url,
    max: senderConnections,
    application_name: 'pg-billing-bench-enqueue',
  });
  senders.on('error', () => {});
  let sent = 0;
  let calls = 0;
  let inFlight = 0;
  let maxSendLagMs = 0;
  const pending: Promise<void>[] = [];
  // The stream starts from an idle service whose plans the bench's own VACUUM ANALYZE has just
  // invalidated, with fresh connections of its own: the first ~0.5 s ran at 50-100 ms and alone
  // made the p99 (bench/LOG.md). The window measured starts after a warm-up at the same rate.
  let measuredFrom: number | undefined;
  let dbStarted = 0;
  const started = performance.now();
  for (let tick = 1; ; tick++) {
    const dueAt = started + tick * tickMs;
    const wait = dueAt - performance.now();
    if (wait > 0) await sleep(wait);
    const now = performance.now();
    if (measuredFrom === undefined && now - started >= warmupSeconds * 1000) {
      measuredFrom = sent;
      calls = 0;
      maxSendLagMs = 0;
      await probe?.start();
      dbStarted = await databaseSeconds(bench.pool);
    }
    if (now - started >= (warmupSeconds + seconds) * 1000) break;
    // Both connections busy: the due commands ride in the next call (the lag is reported).
    if (inFlight >= senderConnections) continue;
    const due = Math.floor(((now - started) / 1000) * rate) - sent;
    if (due <= 0) continue;
    maxSendLagMs = Math.max(maxSendLagMs, now - dueAt);
    const ids: string[] = [];
    const transfers = Array.from({ length: due }, () => randomTransfer(bench.accounts));
    for (let i = 0; i < due; i++) ids.push(`${prefix}${sent++}`);
    calls += 1;
    inFlight += 1;
    pending.push(
      senders
        .query<{ t: number }>(
          `select extract(epoch from statement_timestamp())::float8 as t, (select count(*) from graphile_worker.add_jobs(array(
         select row('billing/transfer', json_build_object('id', id, 'from', f, 'to', t, 'amount', a), null, null, null, null, null, null)::graphile_worker.job_spec
         from unnest($1::text[], $2::text[], $3::text[], $4::text[]) as u(id, f, t, a)))) as n`,
          [ids, transfers.map((x) => x.from), transfers.map((x) => x.to), transfers.map((x) => x.amount)],
        )
        .then(({ rows }) => {
          for (const id of ids) enqueuedAt.set(id, rows[0]!.t);
        })
        .finally(() => {
          inFlight -= 1;
        }),
    );
  }
  await Promise.all(pending);
  const dbEnded = await databaseSeconds(bench.pool);
  const costs = await probe?.stop();
  await drain(bench, seq0, sent);
  await observer.catchUp();
  await observer.close();
  await senders.end();
  // Only the commands of the measured window are timed.
  for (let i = 0; i < (measuredFrom ?? 0); i++) enqueuedAt.delete(`${prefix}${i}`);
  const latencies = [...enqueuedAt]
    .flatMap(([id, at]) => {
      const seen = seenAt.get(id);
      return seen === undefined ? [] : [(seen - at) * 1000];
    })
    .sort((a, b) => a - b);
  const pick = (q: number, sorted = latencies) =>
    sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  // Each result's batch notification is the first one whose highest seq is at or above its seq.
  const notified = observer.notifications().sort((a, b) => a.seq - b.seq);
  const notifiedAt = (seq: number): number | undefined => {
    let lo = 0;
    let hi = notified.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (notified[mid]!.seq < seq) lo = mid + 1;
      else hi = mid;
    }
    return notified[lo]?.at;
  };
  const pickup: number[] = [];
  const batch: number[] = [];
  const read: number[] = [];
  for (const [id, at] of enqueuedAt) {
    const started = startedAt.get(id);
    const seen = seenAt.get(id);
    const notice = notifiedAt(seqOf.get(id) ?? Infinity);
    if (started === undefined || seen === undefined || notice === undefined || notice > seen) continue;
    pickup.push((started - at) * 1000);
    batch.push((notice - started) * 1000);
    read.push((seen - notice) * 1000);
  }
  const part = (xs: number[]) => {
    xs.sort((a, b) => a - b);
    return { p50Ms: pick(0.5, xs), p99Ms: pick(0.99, xs) };
  };
  return {
    parts: { pickup: part(pickup), batch: part(batch), read: part(read) },
    targetRate: rate,
    achievedRate: (sent - (measuredFrom ?? 0)) / (dbEnded - dbStarted),
    samples: latencies.length,
    enqueued: sent,
    warmupSeconds,
    calls,
    maxSendLagMs,
    p50Ms: pick(0.5),
    p99Ms: pick(0.99),
    maxMs: latencies.at(-1) ?? NaN,
    ...(costs ? { costs } : {}),
  };
}

interface Observer {
  catchUp(): Promise<void>;
  close(): Promise<void>;
  /** Each notification that carried a highest seq, with its arrival on the database clock. */
  notifications(): { seq: number; at: number }[];
}

/** A results reader as the client runs one: LISTEN for the wake-up, then read by cursor. */
async function observe(
  bench: BenchDatabase,
  seq0: number,
  onResult: (id: string, seq: number, at: number, transactionStart: number) => void,
): Promise<Observer> {
  const client = new HostClient({ connectionString: bench.url, application_name: 'pg-billing-bench-observer' });
  await client.connect();
  // This process's clock mapped onto the database's (same machine: only the round trip blurs it,
  // so the reading with the shortest of five round trips is used: on a loaded machine one round
  // trip took tens of ms, and notifications then seemed to arrive after the rows they announced).
  let offset = 0;
  let shortest = Infinity;
  for (let i = 0; i < 5; i++) {
    const before = performance.now();
    const {
      rows: [clock],
    } = await client.query<{ t: number }>('select extract(epoch from clock_timestamp())::float8 as t');
    const after = performance.now();
    if (after - before < shortest) {
      shortest = after - before;
      offset = clock!.t - (before + after) / 2000;
    }
  }
  const notifications: { seq: number; at: number }[] = [];
  let cursor = String(seq0);
  let reading: Promise<void> | undefined;
  let again = false;
  let closing = false;
  const read = async (): Promise<void> => {
    do {
      again = false;
      const { rows } = await client.query<{ id: string; seq: string; t: number; c: number }>(
        `select id, seq::text, extract(epoch from clock_timestamp())::float8 as t, extract(epoch from created_at)::float8 as c
         from billing.operations where seq > $1 order by seq`,
        [cursor],
      );
      for (const row of rows) onResult(row.id, Number(row.seq), row.t, row.c);
      if (rows.length) cursor = rows.at(-1)!.seq;
    } while (again);
  };
  const wake = () => {
    if (closing) return;
    if (reading) {
      again = true;
      return;
    }
    reading = read().finally(() => {
      reading = undefined;
    });
  };
  client.on('notification', (message) => {
    const at = offset + performance.now() / 1000;
    try {
      const seq = Number((JSON.parse(message.payload ?? '') as { seq?: unknown }).seq);
      if (Number.isFinite(seq)) notifications.push({ seq, at });
    } catch {
      // A payload without a seq is a wake-up all the same.
    }
    wake();
  });
  await client.query(`listen ${resultsChannel}`);
  // A notification is a hint; a slow poll makes sure nothing waits on a missed one.
  const poll = setInterval(wake, 250);
  return {
    notifications: () => notifications,
    async catchUp() {
      wake();
      while (reading) await reading;
      await read();
    },
    async close() {
      // A wake-up (the poll, a late notification) may have started a read: ending the connection
      // under it rejected that read with no one to catch it, and the bench died (seen once in CI).
      closing = true;
      clearInterval(poll);
      while (reading) await reading;
      await client.end();
    },
  };
}
