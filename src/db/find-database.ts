// How every `billing` subcommand (bench included) and the worker find their database: one rule,
// in one place (docs/configuration.md).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config.ts';

export const projectRoot = fileURLToPath(new URL('../../', import.meta.url));

export interface DatabaseTarget {
  url: string;
  /** `DATABASE_URL`, or the embedded server that `billing start` runs (found through its data folder). */
  source: 'DATABASE_URL' | 'embedded';
}

/** Neither DATABASE_URL nor a running embedded server: the message says what to do. */
export class NoDatabaseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoDatabaseError';
  }
}

/**
 * Where `billing start` keeps the embedded PostgreSQL: an override (--data-dir), else
 * BILLING_DATA_DIR, else .data/postgres.
 */
export function embeddedDataDir(config: Pick<Config, 'dataDir'>, override?: string): string {
  return path.resolve(override ?? config.dataDir ?? path.join(projectRoot, '.data', 'postgres'));
}

/**
 * DATABASE_URL (already checked by loadConfig), else the embedded server that a `billing start` in
 * another terminal runs for BILLING_DATA_DIR. Never a guess at some other server.
 */
export async function findDatabase(config: Pick<Config, 'databaseUrl' | 'dataDir'>): Promise<DatabaseTarget> {
  if (config.databaseUrl) return { url: config.databaseUrl, source: 'DATABASE_URL' };
  const dataDir = embeddedDataDir(config);
  // Loaded on demand: a container (DATABASE_URL always set) needs no embedded binaries.
  const { readEmbeddedDatabaseUrl } = await import('../embedded/embedded-default.ts');
  const url = readEmbeddedDatabaseUrl(dataDir);
  if (url) return { url, source: 'embedded' };
  throw new NoDatabaseError(
    `no database: DATABASE_URL is not set and no embedded PostgreSQL is running for ${dataDir}.\n` +
      'Run `npm start` in another terminal (it starts one), or set DATABASE_URL=postgres://user@host:5432/db.',
  );
}
