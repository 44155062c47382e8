import pg from 'pg';
import { readPayloadJson } from '../commands/json-text.ts';

const jsonOid = 114;

/**
 * Type parsers for the pool graphile-worker fetches jobs with. The only `json` column it reads
 * there is the job's payload (`returning *` of `_private_jobs`; `flags` is jsonb), so a parser for
 * `json` decides how every payload reaches our tasks: refused by size and depth before it becomes
 * objects, numbers kept as written (src/commands/json-text.ts). It must never throw: a throwing
 * parser would fail graphile-worker's fetch of every job in the same batch.
 */
export const queuePayloadParser = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === jsonOid && (format ?? 'text') === 'text') return readPayloadJson;
    return pg.types.getTypeParser(oid, format ?? 'text');
  },
};
