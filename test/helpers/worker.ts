import { loadConfig, type Config } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startWorker, type RunningWorker } from '../../src/worker/run-worker.ts';
import type { TestDatabase } from './database.ts';

/** A real graphile-worker runner with our tasks, inside the test process, on the test database. */
export async function startTestWorker(database: TestDatabase, overrides: Partial<Config> = {}): Promise<RunningWorker> {
  const config = { ...loadConfig({}), databaseUrl: database.url, httpPort: 0, concurrency: 20, ...overrides };
  const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
  return startWorker(config, logger, (error) => {
    throw error;
  });
}
