import type { Command } from '../commands/command.ts';
import { lockSlotCount } from '../commands/contract.ts';
import type { BatchItem } from './plan.ts';

/** Rows of billing.lock_slots, one per slot. */
export const slotCount = lockSlotCount;

/**
 * The lock slot of a key: FNV-1a (32 bits) over the key's UTF-16 code units, folded to a slot.
 * Fixed here rather than PostgreSQL's hashtext, whose output is not a promise across versions; two
 * keys that share a slot only wait for each other.
 */
export function slotOf(key: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i += 1) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % slotCount;
}

/**
 * Every key the batch must hold until commit, as sorted distinct slots: each command's id (a
 * second worker with the same id waits, then replays the first result), every account it names
 * (open_account's included: a command that finds the account missing waits for its creator) and
 * every hold it names (likewise for the hold's creator).
 */
export function lockSlotsOf(items: readonly BatchItem[]): number[] {
  const slots = new Set<number>();
  for (const { parsed } of items) {
    if (!parsed.ok) {
      slots.add(slotOf(`id:${parsed.id}`));
      continue;
    }
    const command = parsed.command;
    slots.add(slotOf(`id:${command.id}`));
    for (const account of accountsNamedBy(command)) slots.add(slotOf(`account:${account}`));
    const hold = holdNamedBy(command);
    if (hold !== undefined) slots.add(slotOf(`hold:${hold}`));
  }
  return [...slots].sort((a, b) => a - b);
}

export function accountsNamedBy(command: Command): string[] {
  switch (command.type) {
    case 'transfer':
      return [command.from, command.to];
    case 'capture':
      return command.to === undefined ? [] : [command.to];
    case 'release':
    case 'expire':
      return [];
    default:
      return [command.account];
  }
}

export function holdNamedBy(command: Command): string | undefined {
  switch (command.type) {
    case 'hold':
    case 'capture':
    case 'release':
    case 'expire':
      return command.hold;
    default:
      return undefined;
  }
}
