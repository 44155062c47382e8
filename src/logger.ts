import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stdout: one line per event, with command id and job id where known. */
export function createLogger(level: string, name = 'pg-billing'): Logger {
  return pino({ name, level, base: { pid: process.pid } });
}
