import { createHash } from 'node:crypto';

/**
 * Job payloads as JSON text. graphile-worker hands a task the payload that node-postgres parsed
 * from the `json` column, and `JSON.parse` turns `1e3`, `1.0` and `0.99999999999999999` into the
 * numbers 1000, 1 and 1: the text that was sent is lost before any rule can look at it. The worker
 * reads payloads with `readPayloadJson` instead (see src/worker/queue-payload-parser.ts), which
 *  - refuses a text over `maxPayloadBytes` or nested deeper than `maxPayloadDepth` before parsing
 *    it, so a poison payload never becomes objects (it becomes an `UnreadablePayload`);
 *  - keeps each number as written: a `JSON.rawJSON` object holding the number's source text, which
 *    `JSON.stringify` writes back digit for digit (graphile-worker stringifies the failed elements
 *    of a batch job, and we store requests that way).
 */

/** A command larger than this (UTF-8 bytes of its JSON text) is refused, before it is parsed. */
export const maxPayloadBytes = 64 * 1024;
/**
 * A batch job (array payload) is parsed whole up to this size, and each element is then held to
 * maxPayloadBytes (src/commands/parse.ts). The database splits larger arrays into jobs of at most
 * two commands' worth (sql/0017_payload_limits.sql); a larger array reaches a worker only if it was
 * stored before that migration, and is then refused whole, under the job's id.
 */
export const maxBatchJobBytes = 4 * maxPayloadBytes;
/** Deeper than this, a payload is refused before it is parsed (parsing recurses). */
export const maxPayloadDepth = 32;
/**
 * A claimed id longer than this (as JSON text) is not looked at in an unreadable payload: 128
 * characters each written as a `\\uXXXX\\uXXXX` pair fit.
 */
const maxClaimedIdText = 2048;

/** A number as it was written in the JSON text: `JSON.rawJSON(source)`. */
export interface JsonNumber {
  readonly rawJSON: string;
}

// JSON.rawJSON and JSON.isRawJSON (ES2026, in Node since 21) are not in TypeScript 5.9's lib yet.
const rawJson = JSON as unknown as { rawJSON(text: string): JsonNumber; isRawJSON(value: unknown): boolean };

export function isJsonNumber(value: unknown): value is JsonNumber {
  return rawJson.isRawJSON(value);
}

/** A payload refused before parsing: what we know of it without building it. */
export class UnreadablePayload {
  readonly reason: 'too_large' | 'too_deep';
  readonly bytes: number;
  /** sha-256 of the text: the same payload sent again is a replay, another is not. */
  readonly digest: string;
  /** The top-level field in which the nesting went too deep (too_deep only). */
  readonly field: string | undefined;
  /** The top-level `"id"` string, if the payload has one that is short and plain. */
  readonly claimedId: unknown;
  /** The hash `digest` is made with: md5 when the database measured the payload (its stub). */
  readonly digestAlgorithm: 'sha256' | 'md5';

  constructor(
    reason: UnreadablePayload['reason'],
    bytes: number,
    digest: string,
    field: string | undefined,
    claimedId: unknown,
    digestAlgorithm: 'sha256' | 'md5' = 'sha256',
  ) {
    this.reason = reason;
    this.bytes = bytes;
    this.digest = digest;
    this.field = field;
    this.claimedId = claimedId;
    this.digestAlgorithm = digestAlgorithm;
  }
}

/** Parses a job payload's JSON text, keeping numbers' source text. Never throws for JSON text. */
export function readPayloadJson(text: string): unknown {
  const bytes = Buffer.byteLength(text);
  const scan = scanJson(text);
  if (bytes > (scan.topIsArray ? maxBatchJobBytes : maxPayloadBytes))
    return new UnreadablePayload('too_large', bytes, digestOf(text), undefined, scan.claimedId);
  if (scan.tooDeepField !== undefined)
    return new UnreadablePayload('too_deep', bytes, digestOf(text), scan.tooDeepField, scan.claimedId);
  return parseKeepingNumbers(text);
}

/** `JSON.parse` with numbers kept as written; for texts already known to be small and shallow. */
export function parseKeepingNumbers(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown, context?: { source?: string }) =>
    typeof value === 'number' && context?.source !== undefined ? rawJson.rawJSON(context.source) : value,
  );
}

function digestOf(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

interface Scan {
  topIsArray: boolean;
  tooDeepField: string | undefined;
  claimedId: string | undefined;
}

/**
 * One pass over the text without building anything: the first top-level field nested deeper than
 * maxPayloadDepth, and the top-level `"id"` if it is a plain string (the last one, as in JSON.parse),
 * wherever it stands: the refusal is filed under the id its sender waits on.
 */
function scanJson(text: string): Scan {
  let depth = 0;
  let topIsObject = false;
  let topIsArray = false;
  let expectKey = false;
  let currentKey: string | undefined;
  let valueOfId = false;
  let tooDeepField: string | undefined;
  let claimedId: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (char === 0x22 /* " */) {
      const start = i;
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) {
        if (text.charCodeAt(i) === 0x5c /* \ */) i++;
      }
      if (depth === 1 && topIsObject) {
        const literal = text.slice(start, i + 1);
        if (expectKey) {
          currentKey = literal;
          expectKey = false;
        } else if (valueOfId) {
          // The last "id" wins, as in JSON.parse.
          claimedId = literal.length <= maxClaimedIdText ? decodeString(literal) : undefined;
        }
        valueOfId = false;
      }
    } else if (char === 0x7b /* { */ || char === 0x5b /* [ */) {
      if (depth === 0) {
        topIsObject = char === 0x7b;
        topIsArray = !topIsObject;
      }
      if (valueOfId) claimedId = undefined;
      depth++;
      if (depth === 1) expectKey = topIsObject;
      valueOfId = false;
      // A batch job's elements each get maxPayloadDepth levels (the array is one more).
      if (depth > maxPayloadDepth + (topIsObject ? 0 : 1) && tooDeepField === undefined) {
        tooDeepField = topIsObject && currentKey !== undefined ? (decodeString(currentKey) ?? 'payload') : 'payload';
      }
    } else if (char === 0x7d /* } */ || char === 0x5d /* ] */) {
      depth--;
    } else if (depth === 1 && topIsObject) {
      if (char === 0x2c /* , */) expectKey = true;
      else if (char === 0x3a /* : */) valueOfId = currentKey === '"id"';
      else if (char > 0x20) {
        if (valueOfId) claimedId = undefined;
        valueOfId = false;
      }
    }
  }
  return { topIsArray, tooDeepField, claimedId };
}

function decodeString(literal: string): string | undefined {
  try {
    const value: unknown = JSON.parse(literal);
    return typeof value === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}
