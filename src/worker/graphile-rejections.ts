import type { Logger } from '../logger.ts';

/**
 * The rejections graphile-worker 0.18 leaves unhandled when its connections die (a PostgreSQL
 * restart, a network partition), each seen in the chaos suite, where it ended the worker process.
 * Each is harmless to go on from, and says why.
 */
const knownRejections: { matches: (error: Error) => boolean; message: string }[] = [
  {
    // localQueue.js, returnJobs: a runner being stopped cannot hand the jobs waiting in its local
    // queue back. They stay locked by the lost runner's id, whose liveness session is gone, and
    // the reapers hand them to a live runner.
    matches: (error) =>
      error.message.startsWith('Error occurred whilst returning jobs from local queue to database queue'),
    message: 'a stopped queue runner could not return its prefetched jobs; the reapers hand them on',
  },
  {
    // main.js, the LISTEN client's error handler calls its async release() inside a try/catch
    // that cannot catch it, and pg-pool refuses to take back a client it already has. pg-pool
    // throws before it changes anything, and graphile-worker reconnects its listener anyway.
    matches: (error) =>
      error.message === 'Release called on client which has already been released to the pool.' &&
      (error.stack ?? '').includes('graphile-worker'),
    message: "graphile-worker's job listener connection was released twice after it broke; it reconnects",
  },
];

let installed = false;

/**
 * Logs graphile-worker's known unhandled rejections (above) as warnings and goes on; any other
 * unhandled rejection is rethrown and ends the process as before (as an uncaught exception, which
 * `billing worker` turns into exit 70).
 */
export function tolerateKnownGraphileRejections(logger: Logger): void {
  if (installed) return;
  installed = true;
  process.on('unhandledRejection', (reason) => {
    const known = reason instanceof Error ? knownRejections.find((k) => k.matches(reason)) : undefined;
    if (!known) throw reason;
    logger.warn({ error: (reason as Error).message }, known.message);
  });
}
