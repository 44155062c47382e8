/**
 * One bench worker process. `real` runs the billing worker exactly as `billing worker` does
 * (startWorker with the configuration from the environment); `noop` runs graphile-worker with the
 * same queue settings on a task that does nothing, for the queue ceiling.
 */
import { fileURLToPath } from 'node:url';
import { run } from 'graphile-worker';
import pg from 'pg';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { startWorker } from '../src/worker/run-worker.ts';
import { queueSettings } from '../src/worker/queue-settings.ts';

const mode = process.argv[2] ?? 'real';
const config = loadConfig();
const logger = createLogger(config.logLevel);

if (mode === 'noop') {
  const settings = queueSettings(config);
  const runner = await run({
    pgPool: new pg.Pool(settings.pool),
    concurrency: settings.concurrency,
    taskDirectory: fileURLToPath(new URL('./noop-tasks', import.meta.url)),
    noHandleSignals: true,
    logger: new (await import('graphile-worker')).Logger(() => () => {}),
    preset: settings.preset,
  });
  process.stdout.write('ready\n');
  process.once('SIGTERM', () => void runner.stop().then(() => process.exit(0)));
} else {
  const worker = await startWorker(config, logger, (error) => {
    logger.fatal({ err: error }, 'bench worker: fatal');
    process.exit(1);
  });
  process.once('SIGTERM', () => void worker.stop().then(() => process.exit(0)));
}
