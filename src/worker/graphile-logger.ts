import { Logger as GraphileLogger } from 'graphile-worker';
import type { Logger } from '../logger.ts';
import { describeError } from './describe-error.ts';

/**
 * graphile-worker warns when its pool is smaller than the concurrency. Ours is, on purpose: jobs come
 * in bulk through the local queue and run on the ledger pool, so one queue connection serves many
 * jobs (src/worker/queue-settings.ts). The warning would only teach operators to ignore warnings.
 */
const expectedWarning = /^WARNING: having maxPoolSize \(\d+\) smaller than concurrency/;

/**
 * graphile-worker's own messages, through our JSON logger: warnings and errors as they are, except
 * once `lost()` says that its database went away: the runner is being replaced (our own warning said
 * so once), and its failing UNLISTEN and friends go to debug.
 */
export function graphileLogger(logger: Logger, lost: () => boolean = () => false): GraphileLogger {
  const child = logger.child({ component: 'graphile-worker' });
  return new GraphileLogger((scope) => (level, message, meta) => {
    const fields: Record<string, unknown> = { ...scope, ...(meta ?? {}) };
    // Its fetch errors carry the error object: a pg error's every field (and whatever node-pg hangs
    // on it) made a line of 710 bytes in a test; the summary is what a reader needs.
    if (fields.error instanceof Error) fields.error = describeError(fields.error);
    if (lost()) child.debug(fields, message);
    else if (level === 'error') child.error(fields, message);
    else if (level === 'warning' && !expectedWarning.test(message)) child.warn(fields, message);
    // graphile-worker logs every completed job at info, with the whole job: that is our own
    // per-command line's job (with the result), so its info goes to debug.
    else child.debug(fields, message);
  });
}
