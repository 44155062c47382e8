import type { CommandType } from '../commands/contract.ts';
import { commandIdProblem } from '../commands/parse.ts';
import type { CommandInputs } from './types.ts';

/** The fields each command takes: the payload names of the SQL interface and docs/commands.md, nothing else. */
export const inputFields: { readonly [T in CommandType]: readonly (keyof CommandInputs[T])[] } = {
  open_account: ['id', 'metadata', 'account', 'currency'],
  credit: ['id', 'metadata', 'account', 'amount'],
  debit: ['id', 'metadata', 'account', 'amount'],
  transfer: ['id', 'metadata', 'from', 'to', 'amount'],
  hold: ['id', 'metadata', 'account', 'amount', 'hold', 'expires_at', 'ttl_seconds'],
  capture: ['id', 'metadata', 'hold', 'amount', 'to'],
  release: ['id', 'metadata', 'hold'],
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
  const known: readonly PropertyKey[] | undefined = inputFields[type];
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
  const all = input as Partial<
    CommandInputs['hold'] & CommandInputs['transfer'] & CommandInputs['capture'] & CommandInputs['open_account']
  >;
  switch (type) {
    case 'open_account':
      set('account', all.account);
      set('currency', all.currency);
      break;
    case 'credit':
    case 'debit':
      set('account', all.account);
      set('amount', amountText(all.amount));
      break;
    case 'transfer':
      set('from', all.from);
      set('to', all.to);
      set('amount', amountText(all.amount));
      break;
    case 'hold':
      set('account', all.account);
      set('amount', amountText(all.amount));
      set('hold', all.hold);
      set('expires_at', all.expires_at instanceof Date ? all.expires_at.toISOString() : all.expires_at);
      set('ttl_seconds', all.ttl_seconds);
      break;
    case 'capture':
      set('hold', all.hold);
      if (all.amount !== undefined) set('amount', amountText(all.amount));
      set('to', all.to);
      break;
    case 'release':
      set('hold', all.hold);
      break;
    default:
      throw new TypeError(`unknown command type: ${String(type)}`);
  }
  set('metadata', input.metadata);
  return payload;
}

function amountText(amount: unknown): string {
  // A JS number could already have been rounded; only a bigint is exact by construction.
  if (typeof amount !== 'bigint') throw new TypeError(`amount must be a bigint (minor units), got ${typeof amount}`);
  return amount.toString();
}
