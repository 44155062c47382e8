/**
 * Faults that a retry can cure: the database went away, the transaction lost a race, an admin
 * stopped it, a timeout fired. graphile-worker retries every thrown error; this tells the logs,
 * the metrics and the batcher (which splits a batch on anything else) what kind of fault it was,
 * and the client's results cursor when to wait for the server instead of failing. It sits in db/
 * because both the worker and the client package use it, and the client must not load the worker.
 */
const transientSqlStates = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available (lock_timeout)
  '57014', // query_canceled (statement_timeout)
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '25P03', // idle_in_transaction_session_timeout
]);
const transientSqlClasses = ['08', '53', '58']; // connection, insufficient resources, system error

const transientMessages = [
  'Connection terminated',
  'connection terminated',
  'Client has encountered a connection error',
  'timeout exceeded when trying to connect',
  'Connection ended unexpectedly',
  'terminating connection',
];
const transientNodeCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTCONN']);

export function isTransientError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (transientSqlStates.has(code) || transientNodeCodes.has(code)) return true;
    if (code.length === 5 && transientSqlClasses.includes(code.slice(0, 2))) return true;
  }
  return transientMessages.some((text) => error.message.includes(text));
}

export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'unknown';
}
