import { sql } from 'kysely';
import { holdExpiry } from '../commands/contract.ts';
import { parseCommand } from '../commands/parse.ts';
import { runPeriodically } from './periodic.ts';
import type { WorkerRuntime } from './runtime.ts';

/** How late an expiry job may be before the sweeper expires the hold itself. */
export const sweepGraceMs = 1_000;
const sweepIntervalMs = 500;
const sweepLimit = 500;

export interface ExpirySweeper {
  stop(): Promise<void>;
  /** One pass now (also what the timer runs); resolves with the number of holds it expired. */
  runOnce(): Promise<number>;
}

/**
 * A hold's expiry must commit within 5 s of its due time (docs/guarantees.md, expiries on time).
 * Its `billing/expire_hold` job normally does it, but a job can be held up where no retry helps:
 * prefetched into the local queue of a worker that is frozen (SIGSTOP, a long GC pause: alive, so
 * its jobs are not reclaimed), locked by a worker that just died, or waiting out a backoff. So
 * every half second each worker also looks for active holds more than `sweepGraceMs` past due and hands
 * their expiry to its own batcher, as the job would: same id (`expire:<hold>`), same payload, so
 * whichever runs second is a replay, and the batch's slot lock on the id serializes the two.
 */
export function startExpirySweeper(runtime: WorkerRuntime): ExpirySweeper {
  const { db, batcher, config, logger, metrics } = runtime;
  const pass = async (): Promise<number> => {
    const due = await db
      .selectFrom('billing.holds')
      .select('hold')
      .where('status', '=', 'active')
      .where('expires_at', '<=', sql<Date>`now() - make_interval(secs => ${sweepGraceMs / 1000})`)
      .orderBy('expires_at')
      .limit(sweepLimit)
      .execute();
    const outcomes = await Promise.all(
      due.map(({ hold }) =>
        batcher.submit({
          parsed: parseCommand({
            task: holdExpiry.taskId,
            payload: { hold },
            defaultId: `${holdExpiry.idPrefix}${hold}`,
            defaultCurrency: config.defaultCurrency,
          }),
          jobId: null,
        }),
      ),
    );
    let expired = 0;
    for (const outcome of outcomes) {
      if (outcome.kind !== 'recorded') continue;
      expired += 1;
      metrics.commands.inc({ type: outcome.result.type, code: outcome.result.code });
    }
    if (expired > 0)
      logger.info({ holds: expired }, 'expired holds whose expiry job was late (more than 1 s past due)');
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
