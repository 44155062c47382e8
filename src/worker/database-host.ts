import { onHostChosen } from '../db/hosts.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from './metrics.ts';

/**
 * One line and one metric per move to another server of DATABASE_URL (a failover seen), and the
 * server the connections go to now as a gauge. Returns the function that stops watching.
 */
export function watchDatabaseHost(connectionString: string, metrics: Metrics, logger: Logger): () => void {
  let serverBefore: string | undefined;
  return onHostChosen(connectionString, (host) => {
    const server = `${host.host}:${host.port}`;
    metrics.databaseHost.reset();
    metrics.databaseHost.set({ host: server }, 1);
    if (serverBefore) {
      metrics.databaseHostChanges.inc();
      logger.warn({ server, before: serverBefore }, 'connections moved to another server of DATABASE_URL (a failover)');
    }
    serverBefore = server;
  });
}
