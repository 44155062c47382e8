// The expiry-burst scenario's two measuring parts, shared by `node chaos/expiry-burst.ts` and
// test/expiry-burst.test.ts: bringing every active hold to one due instant, and when each expiry
// committed. Both judge by the database clock.
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';

/**
 * Moves every active hold's expiry (and its expiry job's run_at, by as much) to one instant
 * `leadMs` ahead, in one transaction that commits only if it is still `marginMs` before that
 * instant: a hold whose new expiry was already past when it became visible would be "late" by the
 * setup's own time, not the service's. Too slow (a loaded machine), it rolls back and tries again
 * with twice the lead. Returns the instant.
 */
export async function moveHoldsToOneInstant(pool: pg.Pool, leadMs: number, marginMs = 300): Promise<Date> {
  for (let lead = leadMs; ; lead *= 2) {
    const client = await pool.connect();
    try {
      await client.query('begin');
      const { rows } = await client.query<{ due: Date; moved: string }>(
        `with instant as (select now() + make_interval(secs => $1::float8 / 1000) as due),
         moved_jobs as (
           update graphile_worker._private_jobs as j set run_at = j.run_at - (h.expires_at - instant.due)
           from billing.holds as h, instant where j.key = 'expire:' || h.hold and h.status = 'active'),
         moved as (
           update billing.holds as h set expires_at = instant.due from instant where h.status = 'active' returning 1)
         select instant.due, (select count(*) from moved)::text as moved from instant`,
        [lead],
      );
      const { rows: clock } = await client.query<{ early: boolean }>(
        `select clock_timestamp() < $1::timestamptz - make_interval(secs => $2::float8 / 1000) as early`,
        [rows[0]!.due, marginMs],
      );
      if (clock[0]!.early) {
        await client.query('commit');
        return rows[0]!.due;
      }
      await client.query('rollback');
    } catch (error) {
      await client.query('rollback').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }
}

export interface CommitWatch {
  /** Stops watching, after one last reading. */
  stop(): Promise<void>;
  /** The earliest database time at which the result with this seq was seen committed. */
  committedBy(seq: bigint): Date | undefined;
  /** The highest seq seen committed by the first reading at or after `time`: results above it committed later. */
  seenAt(time: Date): bigint | undefined;
}

/**
 * When results commit, from outside: every `intervalMs` it reads the highest committed seq and the
 * database clock. Seqs are handed out under one lock held to commit (sql/0007), so when a seq is
 * seen every lower one has committed: a result committed before the first reading that saw its seq
 * or a higher one. An upper bound, late by at most one interval and one query.
 */
export function watchCommits(pool: pg.Pool, intervalMs = 50): CommitWatch {
  const readings: { seq: bigint; at: Date }[] = [];
  let stopped = false;
  const read = async () => {
    const { rows } = await pool.query<{ seq: string; at: Date }>(
      'select coalesce(max(seq), 0)::text as seq, clock_timestamp() as at from billing.operations',
    );
    readings.push({ seq: BigInt(rows[0]!.seq), at: rows[0]!.at });
  };
  // Settles (never rejects) when stopped, after one last reading, or on a failed reading, which
  // stop() then throws.
  const loop = (async (): Promise<unknown> => {
    try {
      while (!stopped) {
        await read();
        await sleep(intervalMs);
      }
      await read();
      return undefined;
    } catch (error) {
      return error;
    }
  })();
  return {
    async stop() {
      stopped = true;
      const error = await loop;
      if (error) throw error;
    },
    committedBy(seq) {
      return readings.find((reading) => reading.seq >= seq)?.at;
    },
    seenAt(time) {
      return readings.find((reading) => reading.at.getTime() >= time.getTime())?.seq;
    },
  };
}

/** How late each expiry committed after its hold's due time, in ms, by `watch`'s readings. */
export async function commitLateness(pool: pg.Pool, watch: CommitWatch): Promise<number[]> {
  const { rows } = await pool.query<{ seq: string; expires_at: Date }>(
    `select o.seq::text as seq, h.expires_at from billing.operations as o
     join billing.holds as h on o.id = 'expire:' || h.hold where o.type = 'expire'`,
  );
  return rows.map((row) => {
    const committed = watch.committedBy(BigInt(row.seq));
    if (!committed) throw new Error(`expiry ${row.seq} was not seen committed while watching`);
    return committed.getTime() - row.expires_at.getTime();
  });
}

/**
 * Enqueues `count` jobs of `task` with add_jobs, in chunks of 10,000. `payload` is an SQL
 * expression of `g`, the job's number from 1; `runAt`, when they may run (default: now).
 */
export async function addJobs(
  pool: pg.Pool,
  task: string,
  count: number,
  payload: string,
  runAt?: Date,
): Promise<void> {
  const chunk = 10_000;
  for (let from = 1; from <= count; from += chunk) {
    await pool.query(
      `select count(*) from graphile_worker.add_jobs(array(
         select row($1::text, ${payload}, null, $4::timestamptz, null, null, null, null)::graphile_worker.job_spec
         from generate_series($2::int, $3::int) g))`,
      [task, from, Math.min(count, from + chunk - 1), runAt ?? null],
    );
  }
}
