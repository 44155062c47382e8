import type { Logger } from '../logger.ts';

/** The start of the error graphile-worker 0.18's local queue throws (localQueue.js, `returnJobs`). */
const returnJobsFailed = 'Error occurred whilst returning jobs from local queue to database queue';

let installed = false;

/**
 * graphile-worker 0.18 leaves one rejection unhandled: a runner that is being stopped and cannot
 * hand the jobs waiting in its local queue back to the database (its connection died) throws
 * "Error occurred whilst returning jobs from local queue ..." where nothing catches it, and Node
 * ends the process. After a PostgreSQL restart that is the lost runner, whenever it had jobs
 * waiting: in the chaos suite most workers died of it instead of starting a fresh runner.
 * Nothing is lost by going on: those jobs stay locked by the lost runner's id, whose liveness
 * session is gone, and the reapers hand them to a live runner. So that one is logged as a warning;
 * any other unhandled rejection is rethrown and ends the process as before (as an uncaught
 * exception, which `billing worker` turns into exit 70).
 */
export function tolerateLostRunnerRejections(logger: Logger): void {
  if (installed) return;
  installed = true;
  process.on('unhandledRejection', (reason) => {
    if (reason instanceof Error && reason.message.startsWith(returnJobsFailed)) {
      logger.warn(
        { error: reason.message },
        'a stopped queue runner could not return its prefetched jobs; the reapers hand them on',
      );
      return;
    }
    throw reason;
  });
}
