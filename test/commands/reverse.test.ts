import t from 'tap';
import { decide } from '../../src/commands/command.ts';
import { reverse } from '../../src/commands/reverse.ts';
import { applied, checkExamples, closed, frozen, full, rows, usd } from '../helpers/command-examples.ts';

// c: a transfer of 5 from a to b. Its reversal moves 5 (or the part asked) from b back to a: out
// of b first, then into a, each move checked as a transaction's leg.
const transferC = applied('c', 'transfer', [
  ['a', -5n],
  ['b', 5n],
]);
// a at a ceiling of the bigint's limit: any money in is limit_exceeded, and overflow after it.
const aAtCeiling = usd('a', full, 0n, { maxBalance: full });

t.test('reverse: one example a code, in the order it checks them', async (t) => {
  checkExamples(t, reverse, [
    { payload: '{"of":"c","amount":"-5"}', code: 'invalid_command' },
    { payload: '{"of":"c","amount":"5"}', rows: rows([usd('a', 0n)]), code: 'operation_not_found' },
    // A hold moved no money (and 5 would be more than it has to give back).
    {
      payload: '{"of":"c","amount":"5"}',
      rows: rows([usd('a', 0n)], [], [applied('c', 'hold', [])]),
      code: 'not_reversible',
    },
    // 1 of the credit's 5 is back already: 4 remain, and a (closed, empty) could not give them anyway.
    {
      payload: '{"of":"c","amount":"5"}',
      rows: rows([usd('a', 0n, 0n, closed)], [], [applied('c', 'credit', [['a', 5n]])], {
        c: { total: 5n, reversed: 1n },
      }),
      code: 'amount_exceeds_remaining',
    },
    // b, closed and so empty, cannot give the 5 back, and a could not take them.
    {
      payload: '{"of":"c"}',
      rows: rows([usd('a', full), usd('b', 0n, 0n, closed)], [], [transferC]),
      code: 'account_closed',
    },
    {
      payload: '{"of":"c"}',
      rows: rows([aAtCeiling, usd('b', 4n, 0n, frozen)], [], [transferC]),
      code: 'account_frozen',
    },
    { payload: '{"of":"c"}', rows: rows([aAtCeiling, usd('b', 4n)], [], [transferC]), code: 'insufficient_funds' },
    { payload: '{"of":"c"}', rows: rows([aAtCeiling, usd('b', 5n)], [], [transferC]), code: 'limit_exceeded' },
    { payload: '{"of":"c"}', rows: rows([usd('a', full), usd('b', 5n)], [], [transferC]), code: 'overflow' },
    // A part: 2 more of the 5, after 2 put back already, b's overdraft paying 1 of them.
    {
      payload: '{"of":"c","amount":"2"}',
      rows: rows([usd('a', 0n), usd('b', 1n, 0n, { overdraftLimit: 1n })], [], [transferC], {
        c: { total: 5n, reversed: 2n },
      }),
      code: 'ok',
      decision: {
        kind: 'applied',
        postings: [
          { account: 'b', balanceDelta: -2n, heldDelta: 0n },
          { account: 'a', balanceDelta: 2n, heldDelta: 0n },
        ],
        reversal: { of: 'c', amount: 2n, total: 5n },
      },
    },
    // A transaction (5 into a, a pays 5 to b, b pays out 2), reversed whole, its last move first:
    // b, with 3, gets its 2 back before it gives the 5 back, and a gets 5 before it gives them back.
    {
      payload: '{"of":"t"}',
      rows: rows(
        [usd('a', 0n), usd('b', 3n)],
        [],
        [
          applied('t', 'transaction', [
            ['a', 5n],
            ['a', -5n],
            ['b', 5n],
            ['b', -2n],
          ]),
        ],
      ),
      code: 'ok',
      decision: {
        kind: 'applied',
        postings: [
          { account: 'b', balanceDelta: 2n, heldDelta: 0n },
          { account: 'b', balanceDelta: -5n, heldDelta: 0n },
          { account: 'a', balanceDelta: 5n, heldDelta: 0n },
          { account: 'a', balanceDelta: -5n, heldDelta: 0n },
        ],
        reversal: { of: 't', amount: 1n, total: 1n },
      },
    },
  ]);
});

// The policy codes are in the declared order for each move, and the moves are checked one after
// another (docs/commands.md: "the checks of each move as for a transaction's leg"): a transfer's
// reversal takes the money out of b before it looks at a, so a closed a comes after b's status and
// funds, where a transfer from b to a checks both accounts' closed status first.
t.test(
  "reverse: the moves are checked one after another, a later move's account_closed after an earlier's funds",
  async (t) => {
    const aClosedBFrozen = rows([usd('a', 0n, 0n, closed), usd('b', 5n, 0n, frozen)], [], [transferC]);
    const reversal = decide({ id: 'r', type: 'reverse', of: 'c' }, aClosedBFrozen);
    t.equal(reversal.kind === 'rejected' && reversal.code, 'account_frozen', 'the reversal: b is frozen');
    const transferBack = decide({ id: 'r', type: 'transfer', from: 'b', to: 'a', amount: 5n }, aClosedBFrozen);
    t.equal(transferBack.kind === 'rejected' && transferBack.code, 'account_closed', 'the same move as a transfer');
  },
);
