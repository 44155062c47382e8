import type { Logger } from '../../logger.ts';
import type { RecoveryLogger } from './registration.ts';

/**
 * The reaper and the liveness registration log the ids they handle: 401 of them at every
 * start with the default concurrency (the pool and 400 workers, over 11 KB). Info lines say how
 * many; the ids themselves go to debug.
 */
export function shortIdLists(logger: Logger): RecoveryLogger {
  const shorten = (level: 'info' | 'warn' | 'error') => (fields: object, message: string) => {
    const ids = (fields as { ids?: unknown }).ids;
    if (Array.isArray(ids) && ids.length > 3) {
      logger[level]({ ...fields, ids: undefined, id_count: ids.length }, message);
      logger.debug({ ids }, `${message}: the ids`);
    } else {
      logger[level](fields, message);
    }
  };
  return { info: shorten('info'), warn: shorten('warn'), error: shorten('error') };
}
