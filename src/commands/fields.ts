// The payload's fields, each a schema that says what is wrong in words a sender can act on.
// The command modules build their payload schemas from these; parse.ts runs them.
import { z } from 'zod';
import { derivedIdPrefixes, maxInt64, maxHoldSeconds, maxMetadataBytes } from './contract.ts';
import type { Metadata } from './declare.ts';
import { isJsonNumber } from './json-text.ts';

export const maxMetadataDepth = 8;
const maxCommandIdLength = 128;

export const accountPattern = /^[A-Za-z0-9_.:@-]{1,64}$/;
export const digitsPattern = /^[1-9][0-9]*$/;
const maxSafeInteger = BigInt(Number.MAX_SAFE_INTEGER);

/** What a value that was sent is, for messages: `must be a string, not a number`. */
export function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (isJsonNumber(value) || typeof value === 'number') return 'a number';
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : typeof value;
}

/** A type error that says what was sent, or that nothing was. */
const wrongType = (expected: string) => (issue: { input?: unknown }) =>
  issue.input === undefined ? 'is required' : `must be ${expected}, not ${kindOf(issue.input)}`;

/**
 * Characters as PostgreSQL's char_length counts them (code points), not UTF-16 units: an emoji is
 * one character, as in the id's `character varying` column.
 */
export function characterCount(text: string): number {
  let count = text.length;
  for (let i = 0; i < text.length - 1; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        count--;
        i++;
      }
    }
  }
  return count;
}

/**
 * Why a client's command id is refused, or undefined. Ids the service derives (`job:`, `expire:`)
 * are refused: a client that took one could take a later command's id or block an expiry.
 */
export function commandIdProblem(id: unknown): string | undefined {
  if (typeof id !== 'string') return id === undefined ? 'is required' : `must be a string, not ${kindOf(id)}`;
  if (id.length === 0) return 'must not be empty';
  if (id.length > maxCommandIdLength && characterCount(id) > maxCommandIdLength)
    return `must be at most ${maxCommandIdLength} characters`;
  if (!isWellFormed(id)) return 'contains a NUL character or a lone surrogate, which PostgreSQL cannot store';
  if (derivedIdPrefixes.some((prefix) => id.startsWith(prefix))) {
    return `must not start with ${derivedIdPrefixes.map((prefix) => `"${prefix}"`).join(' or ')} (ids the service derives)`;
  }
  return undefined;
}

/** A client id: 1 to 128 characters, not one the service derives. */
export const clientId = z.unknown().transform((value, ctx): string => {
  const problem = commandIdProblem(value);
  if (problem !== undefined || typeof value !== 'string') {
    ctx.addIssue({ code: 'custom', message: problem ?? 'must be a string' });
    return z.NEVER;
  }
  return value;
});
/** An id that names an existing hold: any 1 to 128 characters (a hold may carry a derived id). */
export const holdRef = z
  .string({ error: wrongType('a string') })
  .min(1, 'must not be empty')
  .refine((hold) => characterCount(hold) <= maxCommandIdLength, `must be at most ${maxCommandIdLength} characters`);
export const accountId = z
  .string({ error: wrongType('a string') })
  .regex(accountPattern, 'must be 1 to 64 characters of A-Z a-z 0-9 _ . : @ -');
export const currency = z.string({ error: wrongType('a string') }).regex(/^[A-Z]{3}$/, 'must be three capital letters');

/**
 * A positive whole number, judged by its JSON text (`source`), never by the double it parses to:
 * digits only, no sign, fraction or exponent. Plain JS numbers (from callers that built the
 * payload in code, not from JSON text) must be safe integers.
 */
function wholeNumber(value: unknown, max: bigint, fail: (message: string) => never): bigint {
  let parsed: bigint;
  if (isJsonNumber(value)) {
    if (!digitsPattern.test(value.rawJSON)) {
      return fail(
        `must be a positive whole number written with digits only (no sign, fraction or exponent), got ${quoteNumber(value.rawJSON)}`,
      );
    }
    parsed = BigInt(value.rawJSON);
  } else if (typeof value === 'number') {
    if (!Number.isInteger(value) || value <= 0)
      return fail(`must be a positive whole number, got ${quoteNumber(String(value))}`);
    parsed = BigInt(value);
  } else {
    return fail('must be a number');
  }
  if (parsed > maxSafeInteger) return fail('is above 2^53-1 as a JSON number: send it as a string of digits');
  if (parsed > max) return fail(`must be at most ${max}`);
  return parsed;
}

function quoteNumber(source: string): string {
  return source.length > 40 ? `${source.slice(0, 40)}...` : source;
}

/** Minor units as a string of digits or a JSON integer; parsed straight to bigint, never a float. */
export const amount = z.unknown().transform((value, ctx): bigint => {
  const fail = (message: string): never => {
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER as never;
  };
  if (value === undefined) return fail('is required');
  if (typeof value === 'string') {
    if (!digitsPattern.test(value)) return fail('must be a positive whole number written with digits only, like "111"');
    const parsed = BigInt(value);
    return parsed > maxInt64 ? fail('must be at most 9223372036854775807') : parsed;
  }
  if (isJsonNumber(value) || typeof value === 'number') return wholeNumber(value, maxInt64, fail);
  return fail(`must be a string of digits or a JSON integer, not ${kindOf(value)}`);
});

/**
 * A limit in minor units (overdraft_limit, max_balance): written as an amount is, but 0 is one too
 * (no overdraft; a ceiling of zero).
 */
export const limit = z.unknown().transform((value, ctx): bigint => {
  if (value === '0' || value === 0 || (isJsonNumber(value) && value.rawJSON === '0')) return 0n;
  const parsed = amount.safeParse(value);
  if (parsed.success) return parsed.data;
  const message = parsed.error.issues[0]?.message ?? 'must be a whole number';
  ctx.addIssue({ code: 'custom', message: message.replace('a positive whole number', 'a whole number of 0 or more') });
  return z.NEVER;
});

/** A ceiling in minor units, or null for none. */
export const ceiling = z.unknown().transform((value, ctx): bigint | null => {
  if (value === null) return null;
  const parsed = limit.safeParse(value);
  if (parsed.success) return parsed.data;
  ctx.addIssue({
    code: 'custom',
    message: `${parsed.error.issues[0]?.message ?? 'must be a whole number'}, or null for none`,
  });
  return z.NEVER;
});

/** Seconds as a JSON number written with digits only, at most 30 days. */
export const ttlSeconds = z.unknown().transform((value, ctx): number => {
  const fail = (message: string): never => {
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER as never;
  };
  if (!isJsonNumber(value) && typeof value !== 'number')
    return fail(`must be a JSON number of seconds, not ${kindOf(value)}`);
  const seconds = wholeNumber(value, BigInt(maxHoldSeconds), (message) =>
    fail(message.startsWith('must be at most') ? 'must be at most 30 days' : message),
  );
  return Number(seconds);
});

export const expiresAt = z.iso.datetime({
  offset: true,
  error: (issue) =>
    issue.code === 'invalid_type'
      ? wrongType('an ISO 8601 timestamp string')(issue)
      : 'must be an ISO 8601 timestamp with a time zone',
});

const metadata = z.unknown().transform((value, ctx): Metadata => {
  const fail = (message: string): never => {
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER as never;
  };
  if (!isObject(value)) return fail(`must be a JSON object, not ${kindOf(value)}`);
  if (Buffer.byteLength(JSON.stringify(value)) > maxMetadataBytes)
    return fail(`must be at most ${maxMetadataBytes} bytes serialized`);
  if (depthOf(value) > maxMetadataDepth) return fail(`must be nested at most ${maxMetadataDepth} levels deep`);
  return value;
});

export const common = { id: clientId.optional(), metadata: metadata.optional() };

export function isWellFormed(text: string): boolean {
  return text.isWellFormed() && !text.includes('\u0000');
}

function depthOf(value: unknown): number {
  if (Array.isArray(value)) return 1 + Math.max(0, ...value.map(depthOf));
  if (isObject(value)) return 1 + Math.max(0, ...Object.values(value).map(depthOf));
  return 0;
}

/** A JSON object: not an array, not a number kept as JSON text. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !isJsonNumber(value);
}
