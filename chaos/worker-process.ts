// One billing worker as its own OS process, the way `billing worker` runs it, for the chaos run:
// settings from the environment, JSON logs on stdout, exit 70 when it must stop working at once
// (its supervisor, here the chaos run, starts a fresh one), SIGTERM/SIGINT for a graceful stop.
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { startWorker } from '../src/worker/run-worker.ts';

const fatalExitCode = 70;
const config = loadConfig();
const logger = createLogger(config.logLevel, 'pg-billing-chaos-worker');

const onFatal = (error: Error) => {
  logger.error({ err: error }, 'fatal: exiting so that a fresh worker takes over');
  process.exit(fatalExitCode);
};

// An uncaught fault ends the process with 1, as before (the run counts it as a crash, not as a
// planned exit 70), but as one JSON line with its stack: Node's own report spans many lines, and
// the run keeps only the last six of a crashed worker's log, which were the error's fields.
process.on('uncaughtException', (error, origin) => {
  logger.fatal({ err: error, origin }, 'uncaught exception: the worker crashes');
  process.exit(1);
});

let worker: Awaited<ReturnType<typeof startWorker>>;
try {
  worker = await startWorker(config, logger, onFatal);
} catch (error) {
  // PostgreSQL may be down (a crash restart): the supervisor retries.
  logger.error({ err: error }, 'worker could not start');
  process.exit(fatalExitCode);
}
process.stdout.write(`${JSON.stringify({ msg: 'chaos worker ready', pid: process.pid })}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  worker.stop().then(
    () => process.exit(0),
    (error: unknown) => {
      logger.error({ err: error }, 'graceful stop failed');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
