import { z } from 'zod';
import { type CommandBase, declareCommand } from './declare.ts';
import { closedReason, holdNotFound, reject } from './decision.ts';
import { common, holdRef } from './fields.ts';

export interface Release extends CommandBase {
  type: 'release';
  hold: string;
}

export const release = declareCommand({
  type: 'release',
  task: 'release',
  schema: z.strictObject({ ...common, hold: holdRef }),
  build: (p, base): Release => ({ ...base, type: 'release', hold: p.hold }),
  codes: ['hold_not_found', 'hold_closed'],
  locks: (command) => ({ accounts: [], hold: command.hold }),
  decide(command, view) {
    const hold = view.holds.get(command.hold);
    if (!hold) return holdNotFound(command.hold);
    const closed = closedReason(hold, view.now);
    if (closed) return reject('hold_closed', closed);
    return {
      kind: 'applied',
      postings: [{ account: hold.account, balanceDelta: 0n, heldDelta: -hold.amount }],
      closeHold: { hold: hold.hold, status: 'released', captured: 0n, capturedTo: null },
    };
  },
  cli: {
    name: 'release',
    summary: 'give a hold back',
    description: 'Give a hold back: held -= what remains of it; the hold closes.',
    arguments: [{ field: 'hold', help: 'hold id' }],
    options: [],
    examples: ['billing release order-8'],
  },
});
