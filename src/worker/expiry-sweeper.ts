import { hostname } from 'node:os';
import { sql } from 'kysely';
import { holdExpiry } from '../commands/contract.ts';
import { parseCommand } from '../commands/parse.ts';
import { applyBatch } from '../ledger/apply.ts';
import { runPeriodically } from './periodic.ts';
import type { WorkerRuntime } from './runtime.ts';

/**
 * How late a hold may be before any worker expires it, whichever share of the due holds it falls
 * in (its own worker may be frozen or gone).
 */
export const sweepGraceMs = 1_000;
const sweepIntervalMs = 250;
/** Holds expired in one transaction: enough to amortize it, few enough to keep its locks short. */
const sweepBatch = 1_000;

export interface ExpirySweeper {
  stop(): Promise<void>;
  /** One pass now (also what the timer runs); resolves with the number of holds it expired. */
  runOnce(): Promise<number>;
}

/**
 * A hold's expiry must commit within 5 s of its due time (docs/guarantees.md, expiries on time),
 * also when thousands fall due at one instant behind a backlog of commands. Its
 * `billing/expire_hold` job alone cannot promise that: it waits for a fetch behind the jobs
 * already in the local queues, then costs what any command costs (fetch, task, batch, completion),
 * and with 20,000 due at once the queue's pace made them up to 10 s late. So every worker, every
 * quarter second, expires due holds itself, straight through the ledger (`applyBatch`: the same
 * rules, locks and result rows as the job) in transactions of up to `sweepBatch`, without the
 * queue or the batcher, and then deletes their now needless expiry jobs (those no worker has
 * fetched). Same id (`expire:<hold>`) and payload as the job, so whichever runs second is a replay
 * or a skip, and the batch's slot lock on the id serializes the two.
 *
 * The live workers split the due holds between them by a hash of the hold, so that they do not
 * queue on each other's slot locks for the same holds; a hold more than `sweepGraceMs` past due is
 * taken by any worker once its own share is done, in case that hold's worker is frozen or gone.
 */
export function startExpirySweeper(runtime: WorkerRuntime): ExpirySweeper {
  const { db, pool, config, logger, metrics } = runtime;
  const me = { host: hostname(), pid: process.pid };

  const dueHolds = async (): Promise<string[]> => {
    const rows = await db
      .with('workers', (qc) => qc.selectFrom('billing.worker_liveness').select(['host', 'os_pid']).distinct())
      .with('share', (qc) =>
        qc
          .selectFrom('workers')
          .select((eb) => [
            eb.fn.countAll<number>().as('workers'),
            sql<number>`count(*) filter (where (host, os_pid) < (${me.host}, ${me.pid}))`.as('rank'),
            sql<boolean>`bool_or(host = ${me.host} and os_pid = ${me.pid})`.as('registered'),
          ]),
      )
      .selectFrom('billing.holds')
      .innerJoin('share', (join) => join.onTrue())
      .select('hold')
      .where('status', '=', 'active')
      .where('expires_at', '<=', sql<Date>`now()`)
      .where((eb) =>
        eb.or([
          sql<boolean>`share.registered is not true`,
          sql<boolean>`abs(hashtext(hold)::int8) % share.workers = share.rank`,
          eb('expires_at', '<=', sql<Date>`now() - make_interval(secs => ${sweepGraceMs / 1000})`),
        ]),
      )
      // Its own share first: under a burst every hold is soon past the grace, and workers taking the
      // same holds at once would queue on each other's locks and find them closed.
      .orderBy(sql`share.registered is true and abs(hashtext(hold)::int8) % share.workers = share.rank`, 'desc')
      .orderBy('expires_at')
      .limit(sweepBatch)
      .execute();
    return rows.map((row) => row.hold);
  };

  const expire = async (holds: string[]): Promise<number> => {
    const items = holds.map((hold) => ({
      parsed: parseCommand({
        task: holdExpiry.taskId,
        payload: { hold },
        defaultId: `${holdExpiry.idPrefix}${hold}`,
        defaultCurrency: config.defaultCurrency,
      }),
      jobId: null,
    }));
    const { outcomes } = await applyBatch(pool, items);
    let expired = 0;
    for (const outcome of outcomes) {
      if (outcome.kind !== 'recorded') continue;
      expired += 1;
      metrics.commands.inc({ type: outcome.result.type, code: outcome.result.code });
    }
    // Their jobs would find the holds closed: skip what a worker holds locked rather than wait for it.
    await sql`delete from graphile_worker._private_jobs where id in (
        select id from graphile_worker._private_jobs
        where key = any(${holds.map((hold) => `${holdExpiry.idPrefix}${hold}`)}::text[]) and locked_at is null
        for update skip locked)`.execute(db);
    return expired;
  };

  const pass = async (): Promise<number> => {
    let expired = 0;
    for (;;) {
      const holds = await dueHolds();
      if (holds.length) expired += await expire(holds);
      if (holds.length < sweepBatch) break;
    }
    if (expired > 0) logger.info({ holds: expired }, 'expired due holds');
    return expired;
  };

  const periodic = runPeriodically(pass, {
    intervalMs: sweepIntervalMs,
    onError: (error) =>
      logger.warn(
        { error: error instanceof Error ? error.message : String(error) },
        'expiry sweep failed; the next one tries again',
      ),
  });
  return { runOnce: pass, stop: () => periodic.stop() };
}
