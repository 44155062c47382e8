import { z } from 'zod';
import { holdExpiry as names } from './contract.ts';
import type { CommandBase, CommandDeclaration } from './declare.ts';
import { holdRef } from './fields.ts';

/** Issued by the service when a hold's time runs out (its names: `holdExpiry` in contract.ts). */
export interface HoldExpiry extends CommandBase {
  type: typeof names.type;
  hold: string;
}

const schema = z.strictObject({ hold: holdRef });

export const holdExpiry: CommandDeclaration<typeof names.type, typeof names.taskId, typeof schema, HoldExpiry> = {
  type: names.type,
  task: names.taskId,
  schema,
  // The service's own command: its id is derived from the hold, it carries no metadata.
  build: (p) => ({ id: `${names.idPrefix}${p.hold}`, type: names.type, hold: p.hold }),
  codes: [],
  locks: (command) => ({ accounts: [], hold: command.hold }),
  decide(command, view) {
    const hold = view.holds.get(command.hold);
    if (!hold || hold.status !== 'active') return { kind: 'skipped', reason: `hold ${command.hold} is not active` };
    if (!hold.expiresAt) return { kind: 'skipped', reason: `hold ${command.hold} has no expiry` };
    if (hold.expiresAt.getTime() > view.now.getTime()) {
      return { kind: 'skipped', reason: `hold ${command.hold} is not due yet`, retryAt: hold.expiresAt };
    }
    return {
      kind: 'applied',
      postings: [{ account: hold.account, balanceDelta: 0n, heldDelta: -hold.amount }],
      closeHold: { hold: hold.hold, status: names.status, captured: 0n, capturedTo: null },
    };
  },
};
