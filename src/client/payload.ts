import { z } from 'zod';
import { clientCommandOf, clientCommands, type CommandType } from '../commands/command.ts';
import { commandIdProblem } from '../commands/fields.ts';
import type { CommandInputs } from './types.ts';

/** The fields each command takes: its payload schema's, the names of the SQL interface and docs/commands.md. */
export const inputFields: { readonly [type: string]: readonly string[] | undefined } = Object.fromEntries(
  clientCommands.map((declaration) => [declaration.type, Object.keys(declaration.schema.shape)]),
);

/** How a field is written in the payload, where it is not written as it is. */
const encoders: { [field: string]: (value: unknown) => unknown } = {
  amount: (value) => moneyText('amount', value),
  legs: (legs) =>
    Array.isArray(legs)
      ? legs.map((leg: unknown) =>
          typeof leg === 'object' && leg !== null && 'amount' in leg
            ? { ...leg, amount: moneyText('amount', leg.amount) }
            : leg,
        )
      : legs,
  overdraft_limit: (value) => moneyText('overdraft_limit', value),
  // null removes the ceiling.
  max_balance: (value) => (value === null ? null : moneyText('max_balance', value)),
  expires_at: (value) => (value instanceof Date ? value.toISOString() : value),
};

/**
 * The JSON payload of a command as the worker reads it: amounts as strings of digits (exact at any
 * size), timestamps as ISO 8601, field names as in the SQL interface. A key the command does not
 * take is refused (a TypeError, nothing enqueued), never dropped: a misspelt `ttlSeconds` would
 * otherwise make a hold that never expires.
 */
export function toPayload<T extends CommandType>(
  type: T,
  id: string,
  input: CommandInputs[T],
): Record<string, unknown> {
  const known = inputFields[type];
  if (!known) throw new TypeError(`unknown command type: ${String(type)}`);
  const unknown = Object.keys(input).filter((key) => !known.includes(key));
  if (unknown.length > 0) {
    throw new TypeError(
      `${type}: unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((key) => JSON.stringify(key)).join(', ')}; ` +
        `it takes ${known.join(', ')}`,
    );
  }
  // The worker would refuse this id and file the refusal under job:<n>: a caller waiting on the id
  // would wait in vain. Refused here, before anything is enqueued.
  const idProblem = commandIdProblem(id);
  if (idProblem !== undefined) throw new TypeError(`id ${idProblem}, got ${JSON.stringify(id).slice(0, 140)}`);
  const payload: Record<string, unknown> = { id };
  const set = (key: string, value: unknown) => {
    if (value !== undefined) payload[key] = value;
  };
  const shape: { [field: string]: z.ZodType } = clientCommandOf[type].schema.shape;
  const fields = input as { [field: string]: unknown };
  for (const field of known) {
    if (field === 'id' || field === 'metadata') continue;
    const value = fields[field];
    // A required field is encoded even when absent, so that a missing amount is a TypeError here.
    if (value === undefined && shape[field] instanceof z.ZodOptional) continue;
    const encode = encoders[field];
    set(field, encode ? encode(value) : value);
  }
  set('metadata', input.metadata);
  return payload;
}

function moneyText(field: string, value: unknown): string {
  // A JS number could already have been rounded; only a bigint is exact by construction.
  if (typeof value !== 'bigint') throw new TypeError(`${field} must be a bigint (minor units), got ${typeof value}`);
  return value.toString();
}
