import { EventEmitter } from 'node:events';
import pg from 'pg';
import t from 'tap';
import { Logger, run } from 'graphile-worker';
import { loadConfig } from '../src/config.ts';
import { queueSettings, refetchDelayMs } from '../src/worker/queue-settings.ts';
import { createTestDatabase } from './helpers/database.ts';
import { waitFor } from './helpers/wait.ts';

// Every add_jobs wakes every worker; at moderate load the worker that lost the race sent a fetch
// that found nothing, for each call (bench/LOG.md). With the service's queue settings a fetch that
// finds nothing starts a refetch delay, and a fetch that finds jobs never does.
t.test('a fetch that finds nothing, and only such a fetch, makes the worker sit out a moment', async (t) => {
  const database = await createTestDatabase('queue-settings');
  t.teardown(() => database.drop());
  const settings = queueSettings({ ...loadConfig({}), databaseUrl: database.url, concurrency: 4 });
  t.same(settings.preset.worker.localQueue?.refetchDelay, { durationMs: refetchDelayMs, threshold: 0 });
  const pools = [new pg.Pool(settings.pool), new pg.Pool(settings.pool)];
  const delays: number[] = [];
  const fetched: number[] = [];
  let done = 0;
  const runners = await Promise.all(
    pools.map((pgPool) => {
      const events = new EventEmitter();
      events.on('localQueue:refetchDelay:start', ({ jobCount }: { jobCount: number }) => delays.push(jobCount));
      events.on('localQueue:getJobs:complete', ({ jobs }: { jobs: unknown[] }) => fetched.push(jobs.length));
      return run({
        pgPool,
        events,
        concurrency: 4,
        taskList: {
          'settings/noop': async () => {
            done += 1;
          },
        },
        noHandleSignals: true,
        logger: new Logger(() => () => {}),
        preset: settings.preset,
      });
    }),
  );
  t.teardown(async () => {
    await Promise.all(runners.map((r) => r.stop()));
    await Promise.all(pools.map((p) => p.end()));
  });
  // Both runners' first fetch, on the empty queue, found nothing.
  await waitFor('a refetch delay after an empty fetch', () => (delays.length >= 2 ? true : undefined));
  // One add_job at a time, each woken for by both runners: at most one of them gets it.
  for (let i = 1; i <= 20; i++) {
    await database.query(`select graphile_worker.add_job('settings/noop', '{}'::json)`);
    await waitFor(`job ${i} done`, () => (done >= i ? true : undefined));
  }
  t.ok(
    fetched.some((n) => n > 0),
    'jobs were fetched',
  );
  t.same(
    delays.filter((jobCount) => jobCount > 0),
    [],
    'no delay after a fetch that found jobs',
  );
});
