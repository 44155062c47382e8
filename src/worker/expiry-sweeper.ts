import { sql } from 'kysely';
import { holdExpiry } from '../commands/contract.ts';
import { createKysely } from '../db/kysely.ts';
import { createPool } from '../db/pool.ts';
import { runPeriodically } from './periodic.ts';
import { workerSessionOptions, type WorkerRuntime } from './runtime.ts';

const sweepIntervalMs = 250;
/**
 * Holds expired in one transaction at most: a burst of tens of thousands takes a few calls, and
 * no call holds its accounts from ordinary batches for long.
 */
export const sweepBatch = 10_000;
/**
 * Calls a worker runs at once, each on its own connection of the sweeper's own pool. On a shared
 * 2-core machine four did 40,000 holds in 3.1-3.4 s where two took 6.9 s (docs/operations.md).
 */
export const sweepLanes = 4;

export interface ExpirySweeper {
  stop(): Promise<void>;
  /** One pass of one lane now; resolves with the number of holds it expired. */
  runOnce(): Promise<number>;
}

/**
 * A hold's expiry must commit within 5 s of its due time (docs/guarantees.md, expiries on time),
 * also when tens of thousands fall due at one instant behind a backlog of commands. Its
 * `billing/expire_hold` job alone cannot promise that: it waits for a fetch behind the jobs already
 * in the local queues, then costs what any command costs. So every worker expires the due holds
 * itself, apart from the queue, the batcher and the ledger's pool, with set-based calls of
 * `billing.expire_due_holds` (sql/0027_set_based_expiry.sql): the rule of
 * src/commands/expire_hold.ts over many holds at once, under a suffix of the ledger's lock order
 * (holds, accounts, seq row: no slot locks), with the same id, request and fingerprint as the job,
 * deleting the jobs it made needless (a job already fetched runs and is a replay: no effect).
 *
 * Each call claims a share of the accounts no other call holds, so the `sweepLanes` lanes of every
 * worker run side by side on disjoint accounts. A lane, every quarter second, calls until no share
 * with a due hold is left to claim.
 */
export function startExpirySweeper(runtime: WorkerRuntime): ExpirySweeper {
  const { config, logger, metrics } = runtime;
  if (!config.databaseUrl) throw new Error('DATABASE_URL is not set');
  const db = createKysely(
    createPool({
      connectionString: config.databaseUrl,
      max: sweepLanes,
      applicationName: 'pg-billing-expiry',
      sessionOptions: workerSessionOptions(config),
    }),
  );

  /** One call, one transaction (autocommit): the number of holds it expired. */
  const expireSome = async (): Promise<number> => {
    const { rows } = await sql<{ expired: number }>`select billing.expire_due_holds(${sweepBatch},
      ${config.notifyQueueLimit}) as expired`.execute(db);
    const expired = rows[0]?.expired ?? 0;
    if (expired > 0) metrics.commands.inc({ type: holdExpiry.type, code: 'ok' }, expired);
    return expired;
  };

  const pass = async (): Promise<number> => {
    let expired = 0;
    for (let count = await expireSome(); count > 0; count = await expireSome()) expired += count;
    if (expired > 0) logger.info({ holds: expired }, 'expired due holds');
    return expired;
  };

  // Out of step, so that some lane looks every sweepIntervalMs / sweepLanes.
  const lanes = Array.from({ length: sweepLanes }, (_, lane) =>
    runPeriodically(pass, {
      intervalMs: sweepIntervalMs,
      firstAfterMs: (sweepIntervalMs * (lane + 1)) / sweepLanes,
      onError: (error) =>
        logger.warn(
          { error: error instanceof Error ? error.message : String(error) },
          'expiry sweep failed; the next one tries again',
        ),
    }),
  );
  return {
    runOnce: pass,
    async stop() {
      await Promise.all(lanes.map((lane) => lane.stop()));
      // Its connections may be gone already (a restart, a partition): nothing to give back then.
      await db.destroy().catch(() => {});
    },
  };
}
