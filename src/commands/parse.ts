import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { type Command, type CommandType, commandTypes, declarationOfTask, type TaskId } from './command.ts';
import type { CommandBase } from './declare.ts';
import { commandIdProblem, digitsPattern, isObject, isWellFormed, kindOf, maxMetadataDepth } from './fields.ts';
import { isJsonNumber, maxPayloadBytes, maxPayloadDepth, UnreadablePayload } from './json-text.ts';

export { maxPayloadBytes } from './json-text.ts';
/** Field names quoted in a message are cut to this length: a message must stay readable. */
const maxQuotedKeyLength = 64;

export type ParseInput = {
  /** graphile-worker task name without the `billing/` prefix, e.g. `credit` or `expire_hold`. */
  task: TaskId;
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
  const type = declarationOfTask(input.task)!.type;
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

  const command = buildCommand(input, id);
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

/** The task's command, or why its payload is not one. */
function buildCommand(input: ParseInput, id: string): Command | string {
  const declaration = declarationOfTask(input.task)!;
  const parsed = declaration.schema.safeParse(input.payload);
  if (!parsed.success) return describeIssue(parsed.error.issues[0]);
  const { metadata } = parsed.data as Partial<CommandBase>;
  const base: CommandBase = { id, ...(metadata === undefined ? {} : { metadata }) };
  return declaration.build(parsed.data, base, { currency: input.defaultCurrency });
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
