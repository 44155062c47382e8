import { locksOf } from '../commands/command.ts';
import { lockSlotCount } from '../commands/contract.ts';
import type { BatchItem } from './plan.ts';

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
  return (hash >>> 0) % lockSlotCount;
}

/**
 * Every key the batch must hold until commit, as sorted distinct slots: each command's id (a
 * second worker with the same id waits, then replays the first result), and the accounts and hold
 * its declaration's `locks` names (open_account's account included: a command that finds the account
 * missing waits for its creator; likewise for a hold's creator), and `moreAccounts`: those of the
 * commands that reversals name, read from their journal before locking.
 */
export function lockSlotsOf(items: readonly BatchItem[], moreAccounts: readonly string[] = []): number[] {
  const slots = new Set<number>(moreAccounts.map((account) => slotOf(`account:${account}`)));
  for (const { parsed } of items) {
    if (!parsed.ok) {
      slots.add(slotOf(`id:${parsed.id}`));
      continue;
    }
    const command = parsed.command;
    slots.add(slotOf(`id:${command.id}`));
    const { accounts, hold, operation } = locksOf(command);
    for (const account of accounts) slots.add(slotOf(`account:${account}`));
    if (hold !== undefined) slots.add(slotOf(`hold:${hold}`));
    // A reversal waits for the command it names (whose batch holds its id) and for the other
    // reversals of it, so that each one sees the totals of those before it.
    if (operation !== undefined) slots.add(slotOf(`id:${operation}`));
  }
  return [...slots].sort((a, b) => a - b);
}
