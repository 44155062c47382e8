import { z } from 'zod';
import { maxTransactionLegs } from './contract.ts';
import { type CommandBase, declareCommand } from './declare.ts';
import { accountId, amount, common } from './fields.ts';
import { decideLegs, type Leg } from './legs.ts';

export interface Transaction extends CommandBase {
  type: 'transaction';
  legs: Leg[];
}

const leg = z
  .strictObject({ from: accountId.optional(), to: accountId.optional(), amount })
  .refine((l) => l.from !== undefined || l.to !== undefined, { message: 'needs from, to or both' });

export const transaction = declareCommand({
  type: 'transaction',
  task: 'transaction',
  schema: z.strictObject({
    ...common,
    legs: z
      .array(leg, { error: (issue) => (issue.input === undefined ? 'is required' : 'must be an array of legs') })
      .min(1, 'must have at least one leg')
      .max(maxTransactionLegs, `must have at most ${maxTransactionLegs} legs`),
  }),
  build: (p, base): Transaction => ({
    ...base,
    type: 'transaction',
    legs: p.legs.map((l) => ({
      ...(l.from === undefined ? {} : { from: l.from }),
      ...(l.to === undefined ? {} : { to: l.to }),
      amount: l.amount,
    })),
  }),
  // Per leg, legs in order: the first leg that fails gives its code (see decideLegs).
  codes: [
    'same_account',
    'account_not_found',
    'account_closed',
    'currency_mismatch',
    'account_frozen',
    'insufficient_funds',
    'limit_exceeded',
    'overflow',
  ],
  locks: (command) => ({ accounts: command.legs.flatMap((l) => [l.from, l.to].filter((a) => a !== undefined)) }),
  decide: (command, view) => decideLegs(command.legs, view, (index) => `legs[${index}]`),
  cli: {
    name: 'transaction',
    summary: 'several moves as one: all apply, in order, or none',
    description:
      'Apply 1 to 64 legs in one command, in the order given, each against the balances the legs before it ' +
      'left; if one fails none applies, and the result names the first failing leg (legs[i], from 0). ' +
      'A leg is --leg FROM,TO,AMOUNT (commas: an account id may hold a colon); leave FROM empty for money in ' +
      '(,alice,100: like credit) and TO empty for money out (alice,,100: like debit).',
    arguments: [],
    options: [
      {
        flags: '--leg <from,to,amount>',
        field: 'legs',
        help: 'a leg, FROM,TO,AMOUNT (FROM or TO may be empty); repeat it for each leg, in order',
      },
    ],
    examples: [
      'billing transaction --leg alice,shop,1000 --leg shop,fees,30',
      'billing transaction --leg ,alice,500 --leg alice,bob,500 --id topup-and-pay-7 --json',
    ],
  },
});
