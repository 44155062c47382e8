import { exitCodes } from './exit-codes.ts';

/**
 * `npm start` forwards the terminal's Ctrl-C to its child, which also got it from the terminal:
 * one key press arrives twice within milliseconds. A repeat inside this window is the same request.
 */
const sameRequestMs = 500;

/**
 * Resolves with the exit code once the process should end: after `stop()` on the first SIGINT,
 * SIGTERM or SIGHUP (0, or 1 if stopping failed), or at once on a second signal (1: forced, nothing
 * waited for). SIGHUP is the terminal closing: the same request as Ctrl-C, so that `npm start` in a
 * closed terminal does not leave its embedded PostgreSQL running.
 */
export function untilStopped(
  stop: (signal: NodeJS.Signals) => Promise<void>,
  log: (message: string) => void,
): Promise<number> {
  return new Promise((resolve) => {
    let firstAt = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      if (firstAt === 0) {
        firstAt = Date.now();
        log(`${signal}: stopping gracefully (send it again to force)`);
        stop(signal).then(
          () => resolve(exitCodes.ok),
          (error: unknown) => {
            log(`stopping failed: ${error instanceof Error ? error.message : String(error)}`);
            resolve(exitCodes.error);
          },
        );
        return;
      }
      if (Date.now() - firstAt < sameRequestMs) return;
      log(`${signal} again: forcing exit`);
      resolve(exitCodes.error);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('SIGHUP', onSignal);
  });
}
