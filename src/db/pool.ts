import pg from 'pg';
import { HostClient } from './hosts.ts';

// int8 arrives from node-pg as a string; money must be a bigint from the column to the code. The
// parser is set per pool, not globally, so graphile-worker's own pool keeps the types it expects.
const int8Oid = 20;
const bigintTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === int8Oid) return (value: string) => BigInt(value);
    return pg.types.getTypeParser(oid, format ?? 'text');
  },
};

export interface PoolSettings {
  connectionString: string;
  max?: number;
  applicationName?: string;
  /** Extra `options` for the backend, e.g. `-c statement_timeout=5s`. */
  sessionOptions?: string;
  /**
   * Send a client's queued queries without waiting for each answer (pg's pipeline mode): the
   * ledger's batch sends its statements in two runs, two round trips a batch (src/ledger/apply.ts).
   */
  pipeline?: boolean;
}

export function createPool(settings: PoolSettings): pg.Pool {
  const pool = new pg.Pool({
    connectionString: settings.connectionString,
    // Every connection finds the server its URL asks for, a new primary after a failover too.
    Client: HostClient,
    max: settings.max ?? 10,
    application_name: settings.applicationName ?? 'pg-billing',
    types: bigintTypes,
    pipeline: settings.pipeline ?? false,
    ...(settings.sessionOptions ? { options: settings.sessionOptions } : {}),
  });
  // An idle client that loses its connection emits 'error' on the pool; without a listener that
  // would crash the process. The next query simply gets a fresh connection.
  pool.on('error', () => {});
  // A checked-out client gets no pool listener: a backend terminated between two of its queries
  // (pg_terminate_backend, a restart) would crash the process. Its next query fails and is retried.
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}
