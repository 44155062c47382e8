import { createHash } from 'node:crypto';
import { z } from 'zod';
import {
  type CommandType,
  commandTypes,
  derivedIdPrefixes,
  expiryIdPrefix,
  expiryTaskId,
  expiryType,
  maxHoldSeconds,
  maxInt64,
  maxMetadataBytes,
} from './contract.ts';
import type { Command, Metadata } from './command.ts';
import { isJsonNumber, maxPayloadBytes, maxPayloadDepth, UnreadablePayload } from './json-text.ts';

export { maxPayloadBytes } from './json-text.ts';
const maxMetadataDepth = 8;
/** Field names quoted in a message are cut to this length: a message must stay readable. */
const maxQuotedKeyLength = 64;
const maxCommandIdLength = 128;

const accountPattern = /^[A-Za-z0-9_.:@-]{1,64}$/;
const digitsPattern = /^[1-9][0-9]*$/;
const maxSafeInteger = BigInt(Number.MAX_SAFE_INTEGER);

/** What a value that was sent is, for messages: `must be a string, not a number`. */
function kindOf(value: unknown): string {
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
const clientId = z.unknown().transform((value, ctx): string => {
  const problem = commandIdProblem(value);
  if (problem !== undefined || typeof value !== 'string') {
    ctx.addIssue({ code: 'custom', message: problem ?? 'must be a string' });
    return z.NEVER;
  }
  return value;
});
/** An id that names an existing hold: any 1 to 128 characters (a hold may carry a derived id). */
const holdRef = z
  .string({ error: wrongType('a string') })
  .min(1, 'must not be empty')
  .refine((hold) => characterCount(hold) <= maxCommandIdLength, `must be at most ${maxCommandIdLength} characters`);
const accountId = z
  .string({ error: wrongType('a string') })
  .regex(accountPattern, 'must be 1 to 64 characters of A-Z a-z 0-9 _ . : @ -');
const currency = z.string({ error: wrongType('a string') }).regex(/^[A-Z]{3}$/, 'must be three capital letters');

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
const amount = z.unknown().transform((value, ctx): bigint => {
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

/** Seconds as a JSON number written with digits only, at most 30 days. */
const ttlSeconds = z.unknown().transform((value, ctx): number => {
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

const expiresAt = z.iso.datetime({
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

const common = { id: clientId.optional(), metadata: metadata.optional() };

const payloadSchemas = {
  open_account: z.strictObject({ ...common, account: accountId, currency: currency.optional() }),
  credit: z.strictObject({ ...common, account: accountId, amount }),
  debit: z.strictObject({ ...common, account: accountId, amount }),
  transfer: z.strictObject({ ...common, from: accountId, to: accountId, amount }),
  hold: z
    .strictObject({
      ...common,
      account: accountId,
      amount,
      // A new hold's id is a client id too: it defaults to the command id, and may be derived from it.
      hold: clientId.optional(),
      expires_at: expiresAt.optional(),
      ttl_seconds: ttlSeconds.optional(),
    })
    .refine((p) => p.expires_at === undefined || p.ttl_seconds === undefined, {
      message: 'give expires_at or ttl_seconds, not both',
      path: ['ttl_seconds'],
    }),
  capture: z.strictObject({ ...common, hold: holdRef, amount: amount.optional(), to: accountId.optional() }),
  release: z.strictObject({ ...common, hold: holdRef }),
  expire_hold: z.strictObject({ hold: holdRef }),
} as const;

export type ParseInput = {
  /** graphile-worker task name without the `billing/` prefix, e.g. `credit` or `expire_hold`. */
  task: CommandType | typeof expiryTaskId;
  payload: unknown;
  /** graphile-worker job id (and element index for a batch job), for the default command id. */
  defaultId: string;
  defaultCurrency: string;
  /** Set for the elements of a batch job, which have no stable default id. */
  requireId?: boolean;
};

/**
 * `request` is the payload as JSON text for the `json` column `billing.operations.request`: numbers
 * as they were written, strings exactly (`\u0000` and lone surrogates escaped, which `json` keeps
 * and `jsonb` would refuse). The ledger stores it as it is.
 */
export type ParsedCommand =
  | { ok: true; command: Command; request: string; fingerprint: string }
  | { ok: false; id: string; type: Command['type']; message: string; request: string; fingerprint: string };

/** Turns a job payload into a typed command, or into the reason it is not one. Never throws. */
export function parseCommand(input: ParseInput): ParsedCommand {
  const type: Command['type'] = input.task === expiryTaskId ? expiryType : input.task;
  try {
    return parsePayload(input, type);
  } catch (error) {
    // A payload built in code (not read from JSON text) can still get here, e.g. a cycle.
    const message = error instanceof RangeError ? 'payload: nested too deeply' : 'payload: not JSON';
    return {
      ok: false,
      id: input.defaultId,
      type,
      message,
      request: '{"unreadable":true}',
      fingerprint: `unreadable:${input.defaultId}`,
    };
  }
}

function parsePayload(input: ParseInput, type: Command['type']): ParsedCommand {
  if (input.payload instanceof UnreadablePayload) return rejectUnreadable(input, type, input.payload);
  const oversized = oversizedStubOf(input.payload);
  if (oversized !== undefined) return rejectUnreadable(input, type, oversized);
  const tooDeep = findTooDeepField(input.payload);
  if (tooDeep !== undefined)
    return rejectUnreadable(
      input,
      type,
      new UnreadablePayload('too_deep', 0, '', tooDeep, usableId(claimedIdOf(input.payload))),
    );
  // The request is stored in a json column that a DBA reads with ->> and ::jsonb: a payload jsonb
  // cannot hold is refused, and its request stored with what jsonb cannot hold replaced.
  const unstorable = findUnstorable(input.payload);
  const request = JSON.stringify(unstorable === undefined ? input.payload : storableCopy(input.payload)) ?? 'null';
  const fingerprint = fingerprintOf(type, input.payload);
  const claimedId = claimedIdOf(input.payload);
  const id = commandIdProblem(claimedId) === undefined ? (claimedId as string) : input.defaultId;
  const reject = (message: string): ParsedCommand => ({ ok: false, id, type, message, request, fingerprint });

  if (!isObject(input.payload)) return reject(`payload: must be a JSON object, not ${kindOf(input.payload)}`);
  const size = Buffer.byteLength(request);
  if (size > maxPayloadBytes) return reject(`payload: is ${size} bytes, at most ${maxPayloadBytes} are accepted`);
  if (input.requireId && input.payload.id === undefined)
    return reject('id: is required for each element of a batch job');
  if (unstorable !== undefined) return reject(`${unstorable.path}: ${unstorable.problem}`);

  const command = buildCommand(input.task, input, id);
  if (typeof command === 'string') return reject(command);
  return { ok: true, command, request, fingerprint };
}

function usableId(id: unknown): string | undefined {
  return commandIdProblem(id) === undefined ? (id as string) : undefined;
}

function claimedIdOf(payload: unknown): unknown {
  if (payload instanceof UnreadablePayload) return payload.claimedId;
  return isObject(payload) ? payload.id : undefined;
}

type Task = keyof typeof payloadSchemas;
type Payload<T extends Task> = z.output<(typeof payloadSchemas)[T]>;
interface Base {
  id: string;
  metadata?: Metadata;
}

/** Each schema, typed by its own output: a checked assignment, so indexing by a task keeps the type. */
const schemaOf: { [T in Task]: z.ZodType<Payload<T>> } = payloadSchemas;

/** Each task's command, built from its schema's output type: a field the schema lacks does not compile. */
const builders: { [T in Task]: (p: Payload<T>, base: Base, input: ParseInput) => Command } = {
  open_account: (p, base, input) => ({
    ...base,
    type: 'open_account',
    account: p.account,
    currency: p.currency ?? input.defaultCurrency,
  }),
  credit: (p, base) => ({ ...base, type: 'credit', account: p.account, amount: p.amount }),
  debit: (p, base) => ({ ...base, type: 'debit', account: p.account, amount: p.amount }),
  transfer: (p, base) => ({ ...base, type: 'transfer', from: p.from, to: p.to, amount: p.amount }),
  hold: (p, base) => ({
    ...base,
    type: 'hold',
    account: p.account,
    amount: p.amount,
    hold: p.hold ?? base.id,
    ...(p.expires_at === undefined ? {} : { expiresAt: new Date(p.expires_at) }),
    ...(p.ttl_seconds === undefined ? {} : { ttlSeconds: p.ttl_seconds }),
  }),
  capture: (p, base) => ({
    ...base,
    type: 'capture',
    hold: p.hold,
    ...(p.amount === undefined ? {} : { amount: p.amount }),
    ...(p.to === undefined ? {} : { to: p.to }),
  }),
  release: (p, base) => ({ ...base, type: 'release', hold: p.hold }),
  // The service's own command: its id is derived from the hold, it carries no metadata.
  expire_hold: (p) => ({ id: `${expiryIdPrefix}${p.hold}`, type: expiryType, hold: p.hold }),
};

/** The task's command, or why its payload is not one. */
function buildCommand<T extends Task>(task: T, input: ParseInput, id: string): Command | string {
  const parsed = schemaOf[task].safeParse(input.payload);
  if (!parsed.success) return describeIssue(parsed.error.issues[0]);
  const metadata = 'metadata' in parsed.data ? parsed.data.metadata : undefined;
  const base: Base = { id, ...(metadata === undefined ? {} : { metadata }) };
  return builders[task](parsed.data, base, input);
}

export function isCommandTask(name: string): name is CommandType {
  return (commandTypes as readonly string[]).includes(name);
}

function describeIssue(issue: z.core.$ZodIssue | undefined): string {
  if (!issue) return 'payload: invalid';
  if (issue.code === 'unrecognized_keys')
    return `${issue.keys.map((key) => quotableKey(storableText(key))).join(', ')}: unknown field`;
  const field = issue.path.length ? issue.path.map((part) => storableText(String(part))).join('.') : 'payload';
  return `${field}: ${issue.message}`;
}

/**
 * The same command sent twice has the same fingerprint whatever the order of its keys; any other
 * difference makes it another command: another amount, "111" against 111, 1e3 against 1000 (numbers
 * by their JSON text), "a\u0000b" against "a\ufffdb" (strings exactly).
 */
export function fingerprintOf(type: string, payload: unknown): string {
  return createHash('sha256').update(type).update('\n').update(canonicalJson(payload)).digest('hex');
}

/** JSON with keys sorted; numbers kept as JSON text are written as they were sent. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isObject(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** A text that a message (a text column) can carry: NUL and lone surrogates replaced. */
function storableText(text: string): string {
  return text.toWellFormed().replaceAll('\u0000', '\uFFFD');
}

function isWellFormed(text: string): boolean {
  return text.isWellFormed() && !text.includes('\u0000');
}

const unstorableText = 'contains a NUL character or a lone surrogate, which PostgreSQL cannot store';
const unstorableNumber =
  "is a number PostgreSQL's jsonb cannot hold (more than 131072 digits before the point or 16383 after)";

/**
 * The first string, key or number that a jsonb value cannot hold, with its path (`metadata.a.0`):
 * a NUL or a lone surrogate (json keeps them, jsonb and text refuse them), or a number beyond
 * PostgreSQL's numeric. The path is built only for what is found: this runs on every command.
 */
function findUnstorable(value: unknown): { path: string; problem: string } | undefined {
  const found = findUnstorablePath(value);
  if (found === undefined) return undefined;
  return { path: found.path.reverse().join('.') || 'payload', problem: found.problem };
}

function findUnstorablePath(value: unknown): { path: string[]; problem: string } | undefined {
  if (typeof value === 'string') return isWellFormed(value) ? undefined : { path: [], problem: unstorableText };
  if (isJsonNumber(value)) return fitsNumeric(value.rawJSON) ? undefined : { path: [], problem: unstorableNumber };
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      const found = findUnstorablePath(value[index]);
      if (found) return (found.path.push(String(index)), found);
    }
  } else if (isObject(value)) {
    for (const key in value) {
      if (!isWellFormed(key)) return { path: [storableText(key)], problem: unstorableText };
      const found = findUnstorablePath(value[key]);
      if (found) return (found.path.push(key), found);
    }
  }
  return undefined;
}

/** PostgreSQL's numeric (and so jsonb) holds at most 131072 digits before the point and 16383 after. */
function fitsNumeric(source: string): boolean {
  const match = /^-?(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(source);
  if (!match) return true;
  const [, whole = '', fraction = '', exponentText = '0'] = match;
  const exponent = Number(exponentText);
  if (fraction.length - exponent > 16383) return false;
  const digits = whole + fraction;
  const firstSignificant = digits.search(/[1-9]/);
  return firstSignificant === -1 || whole.length - firstSignificant + exponent <= 131072;
}

/** The payload with what jsonb cannot hold replaced: strings and keys made storable, numbers as strings. */
function storableCopy(value: unknown): unknown {
  if (typeof value === 'string') return storableText(value);
  if (isJsonNumber(value)) return fitsNumeric(value.rawJSON) ? value : value.rawJSON;
  if (Array.isArray(value)) return value.map(storableCopy);
  if (isObject(value))
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [storableText(key), storableCopy(inner)]));
  return value;
}

/**
 * The stub the database leaves in a job in place of a command over 64 KiB (sql/0017_payload_limits.sql):
 * `{"id", "refused": "payload too large", "payload_bytes", "md5"}`. A client that sends such an
 * object itself only gets its own command refused.
 */
function oversizedStubOf(payload: unknown): UnreadablePayload | undefined {
  if (!isObject(payload) || payload.refused !== 'payload too large') return undefined;
  const bytes = payload.payload_bytes;
  if (!isJsonNumber(bytes) || !digitsPattern.test(bytes.rawJSON) || typeof payload.md5 !== 'string') return undefined;
  return new UnreadablePayload('too_large', Number(bytes.rawJSON), payload.md5, undefined, payload.id, 'md5');
}

function quotableKey(key: string): string {
  return key.length > maxQuotedKeyLength ? `${key.slice(0, maxQuotedKeyLength)}...` : key;
}

/**
 * A payload refused before it was walked: over 64 KiB or nested too deep. The request keeps only
 * what is known of it (not the payload: it may be megabytes, and jsonb or a walk may choke on it),
 * and the fingerprint is that of its text (or of the refusal), so the same payload sent again is a
 * replay and another one under the same id is a conflict.
 */
function rejectUnreadable(input: ParseInput, type: Command['type'], payload: UnreadablePayload): ParsedCommand {
  const id = usableId(payload.claimedId) ?? input.defaultId;
  let message: string;
  let summary: Record<string, unknown>;
  if (payload.reason === 'too_large') {
    message = `payload: is ${payload.bytes} bytes, at most ${maxPayloadBytes} are accepted`;
    summary = { id, payload_bytes: payload.bytes, refused: 'too large' };
  } else {
    const field = quotableKey(storableText(payload.field ?? 'payload'));
    message =
      field === 'metadata'
        ? `metadata: must be nested at most ${maxMetadataDepth} levels deep`
        : `${field}: is nested more than ${maxPayloadDepth} levels deep`;
    summary = { id, nested_too_deeply: field };
  }
  if (payload.digest) summary[payload.digestAlgorithm] = payload.digest;
  return { ok: false, id, type, message, request: JSON.stringify(summary), fingerprint: fingerprintOf(type, summary) };
}

/** The top-level field (or `payload`) that nests deeper than maxPayloadDepth, found without recursion. */
function findTooDeepField(payload: unknown): string | undefined {
  const pending: { value: unknown; depth: number; field: string }[] = [];
  if (isObject(payload)) {
    for (const [key, value] of Object.entries(payload)) pending.push({ value, depth: 2, field: key });
  } else {
    pending.push({ value: payload, depth: 1, field: 'payload' });
  }
  while (pending.length > 0) {
    const { value, depth, field } = pending.pop()!;
    if (typeof value !== 'object' || value === null || isJsonNumber(value)) continue;
    if (depth > maxPayloadDepth) return field;
    for (const inner of Object.values(value)) pending.push({ value: inner, depth: depth + 1, field });
  }
  return undefined;
}

function depthOf(value: unknown): number {
  if (Array.isArray(value)) return 1 + Math.max(0, ...value.map(depthOf));
  if (isObject(value)) return 1 + Math.max(0, ...Object.values(value).map(depthOf));
  return 0;
}

/** A JSON object: not an array, not a number kept as JSON text. */
function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !isJsonNumber(value);
}
