import { createHash } from 'node:crypto';
import { z } from 'zod';
import { type CommandType, commandTypes, maxHoldSeconds, maxInt64, maxMetadataBytes } from './codes.ts';
import type { Command } from './command.ts';

/** A payload larger than this is refused whole, before any field is looked at. */
export const maxPayloadBytes = 64 * 1024;
const maxMetadataDepth = 8;
/** Deeper than this, a payload is refused before anything walks it recursively (or stores it). */
const maxPayloadDepth = 32;
/** Field names quoted in a message are cut to this length: a message must stay readable. */
const maxQuotedKeyLength = 64;

const accountPattern = /^[A-Za-z0-9_.:@-]{1,64}$/;
const digitsPattern = /^[1-9][0-9]*$/;

const commandId = z.string({ error: 'must be a string' })
  .min(1, 'must not be empty')
  .max(128, 'must be at most 128 characters');
const accountId = z.string({ error: 'must be a string' })
  .regex(accountPattern, 'must be 1 to 64 characters of A-Z a-z 0-9 _ . : @ -');
const currency = z.string({ error: 'must be a string' }).regex(/^[A-Z]{3}$/, 'must be three capital letters');

/** Minor units as a string of digits or a safe JSON integer; parsed straight to bigint, never a float. */
const amount = z.unknown().transform((value, ctx): bigint => {
  const fail = (message: string) => {
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  };
  if (value === undefined) return fail('is required');
  if (typeof value === 'string') {
    if (!digitsPattern.test(value)) return fail('must be a positive whole number written with digits only, like "111"');
    const parsed = BigInt(value);
    return parsed > maxInt64 ? fail('must be at most 9223372036854775807') : parsed;
  }
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value <= 0) return fail('must be a positive whole number of minor units');
    if (!Number.isSafeInteger(value)) return fail('is above 2^53-1 as a JSON number: send it as a string of digits');
    return BigInt(value);
  }
  return fail('must be a string of digits or a JSON integer');
});

const metadata = z.unknown().superRefine((value, ctx) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    ctx.addIssue({ code: 'custom', message: 'must be a JSON object' });
  } else if (Buffer.byteLength(JSON.stringify(value)) > maxMetadataBytes) {
    ctx.addIssue({ code: 'custom', message: `must be at most ${maxMetadataBytes} bytes serialized` });
  } else if (depthOf(value) > maxMetadataDepth) {
    ctx.addIssue({ code: 'custom', message: `must be nested at most ${maxMetadataDepth} levels deep` });
  }
});

const common = { id: commandId.optional(), metadata: metadata.optional() };

const payloadSchemas = {
  open_account: z.strictObject({ ...common, account: accountId, currency: currency.optional() }),
  credit: z.strictObject({ ...common, account: accountId, amount }),
  debit: z.strictObject({ ...common, account: accountId, amount }),
  transfer: z.strictObject({ ...common, from: accountId, to: accountId, amount }),
  hold: z.strictObject({
    ...common,
    account: accountId,
    amount,
    hold: commandId.optional(),
    expires_at: z.iso.datetime({ offset: true, error: 'must be an ISO 8601 timestamp with a time zone' }).optional(),
    ttl_seconds: z.number({ error: 'must be a number' }).int('must be a whole number of seconds')
      .positive('must be positive').max(maxHoldSeconds, 'must be at most 30 days').optional(),
  }).refine((p) => p.expires_at === undefined || p.ttl_seconds === undefined, {
    message: 'give expires_at or ttl_seconds, not both',
    path: ['ttl_seconds'],
  }),
  capture: z.strictObject({ ...common, hold: commandId, amount: amount.optional(), to: accountId.optional() }),
  release: z.strictObject({ ...common, hold: commandId }),
  expire_hold: z.strictObject({ hold: commandId }),
} as const;

export type ParseInput = {
  /** graphile-worker task name without the `billing/` prefix, e.g. `credit` or `expire_hold`. */
  task: CommandType | 'expire_hold';
  payload: unknown;
  /** graphile-worker job id (and element index for a batch job), for the default command id. */
  defaultId: string;
  defaultCurrency: string;
  /** Set for the elements of a batch job, which have no stable default id. */
  requireId?: boolean;
};

export type ParsedCommand =
  | { ok: true; command: Command; request: unknown; fingerprint: string }
  | { ok: false; id: string; type: Command['type']; message: string; request: unknown; fingerprint: string };

/** Turns a job payload into a typed command, or into the reason it is not one. Never throws. */
export function parseCommand(input: ParseInput): ParsedCommand {
  const type: Command['type'] = input.task === 'expire_hold' ? 'expire' : input.task;
  try {
    return parsePayload(input, type);
  } catch (error) {
    // Only a payload nested deep enough to exhaust the stack gets here; it is answered, not retried.
    const message = error instanceof RangeError ? 'payload: nested too deeply' : `payload: ${String(error)}`;
    return { ok: false, id: input.defaultId, type, message, request: { unreadable: true }, fingerprint: `unreadable:${input.defaultId}` };
  }
}

function parsePayload(input: ParseInput, type: Command['type']): ParsedCommand {
  const tooDeep = findTooDeepField(input.payload);
  if (tooDeep !== undefined) return rejectTooDeep(input, type, tooDeep);
  const request = storableJson(input.payload);
  const fingerprint = fingerprintOf(type, input.payload);
  const claimedId = isObject(input.payload) ? input.payload.id : undefined;
  const id = commandId.safeParse(claimedId).success && isWellFormed(claimedId as string)
    ? (claimedId as string)
    : input.defaultId;
  const reject = (message: string): ParsedCommand => ({ ok: false, id, type, message, request, fingerprint });

  if (!isObject(input.payload)) return reject('payload: must be a JSON object');
  const size = Buffer.byteLength(JSON.stringify(input.payload));
  if (size > maxPayloadBytes) return reject(`payload: is ${size} bytes, at most ${maxPayloadBytes} are accepted`);
  if (input.requireId && input.payload.id === undefined) return reject('id: is required for each element of a batch job');
  const unstorable = findUnstorableText(input.payload, []);
  if (unstorable) return reject(`${unstorable}: contains a NUL character or a lone surrogate, which PostgreSQL cannot store`);

  const parsed = payloadSchemas[input.task].safeParse(input.payload);
  if (!parsed.success) return reject(describeIssue(parsed.error.issues[0]));
  const p = parsed.data as Record<string, unknown>;
  const base = { id, ...(p.metadata === undefined ? {} : { metadata: p.metadata as Record<string, unknown> }) };
  const command = buildCommand(input, base, p);
  return { ok: true, command, request, fingerprint };
}

function buildCommand(input: ParseInput, base: { id: string }, p: Record<string, unknown>): Command {
  switch (input.task) {
    case 'open_account':
      return { ...base, type: 'open_account', account: p.account as string, currency: (p.currency as string | undefined) ?? input.defaultCurrency };
    case 'credit':
    case 'debit':
      return { ...base, type: input.task, account: p.account as string, amount: p.amount as bigint };
    case 'transfer':
      return { ...base, type: 'transfer', from: p.from as string, to: p.to as string, amount: p.amount as bigint };
    case 'hold':
      return {
        ...base,
        type: 'hold',
        account: p.account as string,
        amount: p.amount as bigint,
        hold: (p.hold as string | undefined) ?? base.id,
        ...(p.expires_at === undefined ? {} : { expiresAt: new Date(p.expires_at as string) }),
        ...(p.ttl_seconds === undefined ? {} : { ttlSeconds: p.ttl_seconds as number }),
      };
    case 'capture':
      return {
        ...base,
        type: 'capture',
        hold: p.hold as string,
        ...(p.amount === undefined ? {} : { amount: p.amount as bigint }),
        ...(p.to === undefined ? {} : { to: p.to as string }),
      };
    case 'release':
      return { ...base, type: 'release', hold: p.hold as string };
    case 'expire_hold':
      return { id: `expire:${p.hold as string}`, type: 'expire', hold: p.hold as string };
  }
}

export function isCommandTask(name: string): name is CommandType {
  return (commandTypes as readonly string[]).includes(name);
}

function describeIssue(issue: z.core.$ZodIssue | undefined): string {
  if (!issue) return 'payload: invalid';
  if (issue.code === 'unrecognized_keys') return `${issue.keys.map(quotableKey).join(', ')}: unknown field`;
  const field = issue.path.length ? issue.path.join('.') : 'payload';
  if (issue.code === 'invalid_type' && issue.input === undefined) return `${field}: is required`;
  return `${field}: ${issue.message}`;
}

/**
 * The same command sent twice has the same fingerprint whatever the order of its keys; any other
 * difference (another amount, "111" against 111) makes it another command.
 */
export function fingerprintOf(type: string, payload: unknown): string {
  return createHash('sha256').update(type).update('\n').update(canonicalJson(storableJson(payload))).digest('hex');
}

export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isObject(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** jsonb refuses NUL and lone surrogates; the stored request replaces them so the answer can be stored. */
export function storableJson(value: unknown): unknown {
  if (typeof value === 'string') return storableText(value);
  if (Array.isArray(value)) return value.map(storableJson);
  if (isObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [storableText(key), storableJson(inner)]));
  }
  return value;
}

function storableText(text: string): string {
  return text.toWellFormed().replaceAll('\u0000', '\uFFFD');
}

function isWellFormed(text: string): boolean {
  return text.isWellFormed() && !text.includes('\u0000');
}

function findUnstorableText(value: unknown, path: string[]): string | undefined {
  if (typeof value === 'string') return isWellFormed(value) ? undefined : path.join('.') || 'payload';
  if (Array.isArray(value)) {
    for (const [index, inner] of value.entries()) {
      const found = findUnstorableText(inner, [...path, String(index)]);
      if (found) return found;
    }
  } else if (isObject(value)) {
    for (const [key, inner] of Object.entries(value)) {
      if (!isWellFormed(key)) return [...path, storableText(key)].join('.');
      const found = findUnstorableText(inner, [...path, key]);
      if (found) return found;
    }
  }
  return undefined;
}

function quotableKey(key: string): string {
  return key.length > maxQuotedKeyLength ? `${key.slice(0, maxQuotedKeyLength)}...` : key;
}

/**
 * A payload nested deeper than maxPayloadDepth is answered without being walked recursively (which
 * could exhaust the stack) or stored (jsonb has a depth limit of its own): the request keeps only
 * the id, and the fingerprint is the id's, so that the same refusal sent again is a replay.
 */
function rejectTooDeep(input: ParseInput, type: Command['type'], field: string): ParsedCommand {
  const claimedId = isObject(input.payload) ? input.payload.id : undefined;
  const id = typeof claimedId === 'string' && commandId.safeParse(claimedId).success && isWellFormed(claimedId) ? claimedId : input.defaultId;
  const message = field === 'metadata'
    ? `metadata: must be nested at most ${maxMetadataDepth} levels deep`
    : `${field}: is nested more than ${maxPayloadDepth} levels deep`;
  const request = { id, nested_too_deeply: storableText(field) };
  return { ok: false, id, type, message, request, fingerprint: fingerprintOf(type, request) };
}

/** The top-level field (or `payload`) that nests deeper than maxPayloadDepth, found without recursion. */
function findTooDeepField(payload: unknown): string | undefined {
  const pending: { value: unknown; depth: number; field: string }[] = [];
  if (isObject(payload)) {
    for (const [key, value] of Object.entries(payload)) pending.push({ value, depth: 2, field: quotableKey(storableText(key)) });
  } else {
    pending.push({ value: payload, depth: 1, field: 'payload' });
  }
  while (pending.length > 0) {
    const { value, depth, field } = pending.pop()!;
    if (typeof value !== 'object' || value === null) continue;
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

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
