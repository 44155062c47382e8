// Clients of the chaos run: they enqueue commands with graphile_worker.add_job from SQL, as an
// application does, and behave like an at-least-once producer: some commands are sent two or three
// times (at once, or seconds later), and an enqueue whose outcome is unknown (the connection broke)
// is sent again. A command counts as sent once it is recorded here, before its first attempt.
import pg from 'pg';
import { HostClient } from '../src/db/hosts.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { type CommandMix, type PlannedCommand } from './commands.ts';

export interface ProducerStats {
  /** add_job calls that committed (duplicates included). */
  enqueued: number;
  /** Extra sends of a command already sent. */
  duplicatesSent: number;
  /** Enqueue transactions that failed and were sent again. */
  enqueueRetries: number;
  /** Enqueue transactions sent and not answered yet, and the commands in them (now). */
  inFlight: number;
  commandsInFlight: number;
}

export interface ProducerOptions {
  databaseUrl: string;
  /** Every command sent, by id: filled as commands are sent. */
  commands: Map<string, PlannedCommand>;
  stats: ProducerStats;
  /** Share of commands sent more than once. */
  duplicateShare: number;
  batchSize: number;
  /** The producer waits while more billing jobs than this are queued. */
  maxBacklog: number;
  backlog: () => number;
}

const enqueueSql = `select count(graphile_worker.add_job('billing/' || c.type, c.payload::json))
  from jsonb_to_recordset($1::jsonb) as c(type text, payload text)`;

/** Enqueues a list of commands in one transaction; sent again until it commits. */
export async function enqueueUntilDone(pool: pg.Pool, list: PlannedCommand[], stats: ProducerStats): Promise<void> {
  const json = JSON.stringify(list.map((c) => ({ type: c.type, payload: JSON.stringify(c.payload) })));
  for (let attempt = 0; ; attempt++) {
    stats.inFlight += 1;
    stats.commandsInFlight += list.length;
    try {
      await pool.query(enqueueSql, [json]);
      stats.enqueued += list.length;
      return;
    } catch {
      // The commit may have happened: sending again is what an at-least-once producer does.
      stats.enqueueRetries += 1;
    } finally {
      stats.inFlight -= 1;
      stats.commandsInFlight -= list.length;
    }
    await sleep(Math.min(1000, 50 * 2 ** Math.min(attempt, 5)));
  }
}

/** Connections of one producer: a broken one (restart, terminated backend) is replaced on next use. */
export function producerPool(databaseUrl: string): pg.Pool {
  const pool = new pg.Pool({
    Client: HostClient,
    connectionString: databaseUrl,
    max: 3,
    connectionTimeoutMillis: 3000,
    application_name: 'chaos-producer',
  });
  pool.on('error', () => {});
  return pool;
}

/** One client: sends batches of the mix until `stop()`; resends some of them later. */
export async function runProducer(
  options: ProducerOptions,
  mix: CommandMix,
  random: () => number,
  stop: () => boolean,
): Promise<void> {
  const pool = producerPool(options.databaseUrl);
  const resends: Promise<void>[] = [];
  try {
    while (!stop()) {
      if (options.backlog() > options.maxBacklog) {
        await sleep(50);
        continue;
      }
      const batch: PlannedCommand[] = [];
      for (let i = 0; i < options.batchSize; i++) {
        const command = mix.next();
        options.commands.set(command.id, command);
        batch.push(command);
        const roll = random();
        if (roll < options.duplicateShare / 2) {
          // Sent twice in the same breath: the two jobs may meet in one batch or race in two workers.
          batch.push(command);
          options.stats.duplicatesSent += 1;
        } else if (roll < options.duplicateShare) {
          const times = random() < 0.5 ? 1 : 2;
          for (let k = 0; k < times; k++) {
            const delay = 100 + Math.floor(random() * 4000);
            options.stats.duplicatesSent += 1;
            resends.push(sleep(delay).then(() => enqueueUntilDone(pool, [command], options.stats)));
          }
        }
      }
      await enqueueUntilDone(pool, batch, options.stats);
    }
    await Promise.all(resends);
  } finally {
    await pool.end().catch(() => {});
  }
}
