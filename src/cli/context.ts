import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, type Config } from '../config.ts';
import { exitCodes } from './exit-codes.ts';

export const projectRoot = fileURLToPath(new URL('../../', import.meta.url));

/** An error the user can act on: printed without a stack, exits with its code. */
export class CliError extends Error {
  readonly exitCode: number;

  constructor(message: string, exitCode: number = exitCodes.error) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

export function loadCliConfig(): Config {
  try {
    return loadConfig();
  } catch (error) {
    throw new CliError(error instanceof Error ? error.message : String(error));
  }
}

/** Where `billing start` keeps the embedded PostgreSQL: --data-dir, else BILLING_DATA_DIR, else .data/postgres. */
export function embeddedDataDir(config: Config, override?: string): string {
  return path.resolve(override ?? config.dataDir ?? path.join(projectRoot, '.data', 'postgres'));
}

export interface DatabaseTarget {
  url: string;
  /** `DATABASE_URL`, or the embedded server that `billing start` runs (found through its data folder). */
  source: 'DATABASE_URL' | 'embedded';
}

/** DATABASE_URL, else the embedded server a `billing start` in another terminal runs. */
export async function findDatabase(config: Config): Promise<DatabaseTarget> {
  if (config.databaseUrl) return { url: config.databaseUrl, source: 'DATABASE_URL' };
  const dataDir = embeddedDataDir(config);
  // Loaded on demand: a container (DATABASE_URL always set) installs no embedded binaries.
  const { readEmbeddedDatabaseUrl } = await import('../embedded/embedded-default.ts');
  const url = readEmbeddedDatabaseUrl(dataDir);
  if (url) return { url, source: 'embedded' };
  throw new CliError(`no database: DATABASE_URL is not set and no embedded PostgreSQL is running for ${dataDir}.\n` +
    'Run `npm start` in another terminal (it starts one), or set DATABASE_URL=postgres://user@host:5432/db.');
}

/** JSON with bigints as strings of digits: money stays exact for scripts. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) => (typeof inner === 'bigint' ? inner.toString() : inner));
}
