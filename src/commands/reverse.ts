import { z } from 'zod';
import { type CommandBase, declareCommand } from './declare.ts';
import { reject, type Decision, type LedgerView, type OperationState } from './decision.ts';
import { amount, common, holdRef } from './fields.ts';
import { decideLegs, type Leg } from './legs.ts';

export interface Reverse extends CommandBase {
  type: 'reverse';
  /** The command whose money moves this one puts back. */
  of: string;
  /** Part of a single move; absent: all that is left of it. */
  amount?: bigint;
}

/** The commands that move money between accounts or in and out, and so can be reversed. */
export const reversibleTypes: readonly string[] = ['credit', 'debit', 'transfer', 'capture', 'transaction'];
/** Of these, the ones that move one amount, which a reversal may put back in parts. */
const singleMoveTypes: readonly string[] = ['credit', 'debit', 'transfer', 'capture'];

/**
 * What reversing a command of this type puts back in all: a single move's amount (partial
 * reversals add up to it at most), or 1 for a transaction, which is reversed whole, once.
 */
export function reversibleTotal(original: OperationState): bigint {
  if (!singleMoveTypes.includes(original.type)) return 1n;
  return original.moves.reduce((most, m) => (abs(m.balanceDelta) > most ? abs(m.balanceDelta) : most), 0n);
}

const abs = (value: bigint) => (value < 0n ? -value : value);

/**
 * The legs that put back `part` of `total` of what the command moved: each of its moves in the
 * other direction, the last one first (a transaction's later leg may have spent what an earlier
 * one brought in: undone first, it gives the money back before the earlier leg takes it away).
 */
export function reversalLegs(original: OperationState, part: bigint, total: bigint): Leg[] {
  return original.moves.toReversed().map((move) => {
    const moved = (abs(move.balanceDelta) * part) / total;
    return move.balanceDelta > 0n ? { from: move.account, amount: moved } : { to: move.account, amount: moved };
  });
}

export const reverse = declareCommand({
  type: 'reverse',
  task: 'reverse',
  // `of` names an earlier command by its id, whoever made it (a derived `job:` id included).
  schema: z.strictObject({ ...common, of: holdRef, amount: amount.optional() }),
  build: (p, base): Reverse => ({
    ...base,
    type: 'reverse',
    of: p.of,
    ...(p.amount === undefined ? {} : { amount: p.amount }),
  }),
  // Then, for each move of the reversal, moves in order: the checks of a transaction's leg (see
  // decideLegs), so a later move's account_closed comes after an earlier move's funds.
  codes: [
    'operation_not_found',
    'not_reversible',
    'amount_exceeds_remaining',
    'account_closed',
    'account_frozen',
    'insufficient_funds',
    'limit_exceeded',
    'overflow',
  ],
  // The accounts are those of the reversed command, read from its journal before the batch locks.
  locks: (command) => ({ accounts: [], operation: command.of }),
  decide: decideReverse,
  cli: {
    name: 'reverse',
    summary: 'put back what an earlier command moved',
    description:
      'Put back what an applied credit, debit, transfer, capture or transaction moved: each of its moves in ' +
      'the other direction, the last first. A single move may be reversed in parts (amount), never beyond ' +
      'the original; a transaction is reversed whole. The result names the reversed command ' +
      '(billing.operations.reverses).',
    arguments: [
      { field: 'of', help: 'id of the command to reverse' },
      { field: 'amount', help: 'minor units to put back (default: all that is left)', optional: true },
    ],
    options: [],
    examples: ['billing reverse order-42-pay', 'billing reverse order-42-pay 50 --id refund-42-1'],
  },
});

function decideReverse(command: Reverse, view: LedgerView): Decision {
  const original = view.operations?.get(command.of);
  if (!original) return reject('operation_not_found', `no command ${command.of} has a result before this one`);
  if (original.status !== 'applied') return reject('not_reversible', `${command.of} was rejected: it moved nothing`);
  if (!reversibleTypes.includes(original.type))
    return reject('not_reversible', `${command.of} is a ${original.type}, not a money move`);
  if (command.amount !== undefined && !singleMoveTypes.includes(original.type))
    return reject('not_reversible', `amount: a ${original.type} is reversed whole, without an amount`);
  if (movesNothing(original)) return reject('not_reversible', `${command.of} moved no money between accounts`);
  const total = reversibleTotal(original);
  const reversed = view.reversals?.get(command.of)?.reversed ?? 0n;
  const remaining = total - reversed;
  const part = command.amount ?? remaining;
  if (remaining === 0n) return reject('amount_exceeds_remaining', `${command.of} is already reversed in full`);
  if (part > remaining)
    return reject(
      'amount_exceeds_remaining',
      `amount ${part} is more than the ${remaining} left to reverse of ${command.of}`,
    );
  const decision = decideLegs(reversalLegs(original, part, total), view, () => `reversing ${command.of}`);
  if (decision.kind !== 'applied') return decision;
  return { ...decision, reversal: { of: command.of, amount: part, total } };
}

/** A capture back to its own account (or a transaction whose legs cancel out) left every balance as it was. */
function movesNothing(original: OperationState): boolean {
  const net = new Map<string, bigint>();
  for (const move of original.moves) net.set(move.account, (net.get(move.account) ?? 0n) + move.balanceDelta);
  return [...net.values()].every((delta) => delta === 0n);
}
