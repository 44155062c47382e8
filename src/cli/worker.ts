import { Command } from 'commander';
import { defaultHttpPort } from '../config.ts';
import { fallbackPorts } from '../worker/http-server.ts';
import { findDatabase, loadCliConfig } from './context.ts';
import { exitCodes } from './exit-codes.ts';
import { withExamples } from './help.ts';
import { untilStopped } from './signals.ts';

export function workerCommand(): Command {
  const command = new Command('worker')
    .summary('run a worker process (health and metrics on BILLING_HTTP_PORT)')
    .description(
      'Run a worker: takes billing jobs from the queue and applies them (run as many as you like, anywhere). ' +
        `Serves /healthz, /readyz and /metrics on port ${defaultHttpPort}, or the next free one up to ${defaultHttpPort + fallbackPorts}, ` +
        'else any free one (several workers on one host; the port is logged as http_port). BILLING_HTTP_PORT=<port> asks for ' +
        'exactly that one (taken: exit 1); 0 takes any free port. Needs a migrated database (else exit 1: run billing migrate). ' +
        'A PostgreSQL restart does not stop it: it starts a fresh queue runner once the server answers. ' +
        'SIGTERM/SIGINT/SIGHUP: in-flight commands finish, the rest go back to the queue, exit 0; a second signal forces exit 1. ' +
        'Exits 70 if it cannot go on by itself (an uncaught fault), so that its supervisor starts a fresh one.',
    )
    .action(async () => {
      const config = loadCliConfig();
      const { url } = await findDatabase(config);
      const [{ createLogger }, { startWorker }] = await Promise.all([
        import('../logger.ts'),
        import('../worker/run-worker.ts'),
      ]);
      const logger = createLogger(config.logLevel);
      // A fault nothing handles (graphile-worker's known ones when its connections die are
      // tolerated: src/worker/graphile-rejections.ts): the process must go, with the code that
      // tells a supervisor to start a fresh one.
      process.on('uncaughtException', (error) => {
        logger.fatal({ err: error }, 'uncaught exception: exiting so that a fresh worker takes over');
        process.exit(exitCodes.workerFatal);
      });
      const worker = await startWorker({ ...config, databaseUrl: url }, logger, (error) => {
        logger.fatal({ err: error }, 'worker stopped working: exiting so that a fresh one takes over');
        process.exit(exitCodes.workerFatal);
      });
      process.exitCode = await untilStopped(
        async () => {
          await worker.stop();
          logger.info('worker stopped');
        },
        (message) => logger.info(message),
      );
    });
  return withExamples(command, [
    'DATABASE_URL=postgres://billing@db:5432/billing billing worker',
    'BILLING_HTTP_PORT=9500 BILLING_CONCURRENCY=100 billing worker',
  ]);
}
