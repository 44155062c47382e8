import { loadConfig, type Config } from '../config.ts';
import { findDatabase as findSharedDatabase, NoDatabaseError, type DatabaseTarget } from '../db/find-database.ts';
import { exitCodes } from './exit-codes.ts';

export { embeddedDataDir, projectRoot, type DatabaseTarget } from '../db/find-database.ts';

/** An error the user can act on: printed without a stack, exits with its code. */
export class CliError extends Error {
  readonly exitCode: number;
  /** Extra fields of the JSON form of this error (with --json). */
  readonly details: Record<string, string>;

  constructor(message: string, exitCode: number = exitCodes.error, details: Record<string, string> = {}) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
    this.details = details;
  }
}

export function loadCliConfig(): Config {
  try {
    return loadConfig();
  } catch (error) {
    throw new CliError(error instanceof Error ? error.message : String(error));
  }
}

/** DATABASE_URL, else the embedded server a `billing start` in another terminal runs (src/db/find-database.ts). */
export async function findDatabase(config: Config): Promise<DatabaseTarget> {
  try {
    return await findSharedDatabase(config);
  } catch (error) {
    if (error instanceof NoDatabaseError) throw new CliError(error.message);
    throw error;
  }
}

/** JSON with bigints as strings of digits: money stays exact for scripts. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) => (typeof inner === 'bigint' ? inner.toString() : inner));
}
