import type { CommandType } from '../commands/codes.ts';
import { commandIdProblem } from '../commands/parse.ts';
import type { CommandInputs } from './types.ts';

/**
 * The JSON payload of a command as the worker reads it: amounts as strings of digits (exact at any
 * size), timestamps as ISO 8601, field names as in the SQL interface.
 */
export function toPayload<T extends CommandType>(type: T, id: string, input: CommandInputs[T]): Record<string, unknown> {
  // The worker would refuse this id and file the refusal under job:<n>: a caller waiting on the id
  // would wait in vain. Refused here, before anything is enqueued.
  const idProblem = commandIdProblem(id);
  if (idProblem !== undefined) throw new TypeError(`id ${idProblem}, got ${JSON.stringify(id).slice(0, 140)}`);
  const payload: Record<string, unknown> = { id };
  const set = (key: string, value: unknown) => {
    if (value !== undefined) payload[key] = value;
  };
  const all = input as Partial<CommandInputs['hold'] & CommandInputs['transfer'] & CommandInputs['capture'] & CommandInputs['open_account']>;
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
      set('expires_at', all.expiresAt?.toISOString());
      set('ttl_seconds', all.ttlSeconds);
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
