import { Logger as GraphileLogger } from 'graphile-worker';
import type { Logger } from '../logger.ts';

/** graphile-worker's own messages, through our JSON logger: warnings and errors as they are. */
export function graphileLogger(logger: Logger): GraphileLogger {
  const child = logger.child({ component: 'graphile-worker' });
  return new GraphileLogger((scope) => (level, message, meta) => {
    const fields = { ...scope, ...(meta ?? {}) };
    if (level === 'error') child.error(fields, message);
    else if (level === 'warning') child.warn(fields, message);
    // graphile-worker logs every completed job at info, with the whole job: that is our own
    // per-command line's job (with the result), so its info goes to debug.
    else if (level === 'info') child.debug(fields, message);
    else child.debug(fields, message);
  });
}
