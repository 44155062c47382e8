import t from 'tap';
import { transaction } from '../../src/commands/transaction.ts';
import { checkExamples, closed, eur, frozen, full, rows, usd } from '../helpers/command-examples.ts';

/** A transaction of these legs ([from, to, amount], '' for none), as a job carries it. */
function legs(...moves: [from: string, to: string, amount: string][]): string {
  const leg = ([from, to, amount]: [string, string, string]) => ({
    ...(from === '' ? {} : { from }),
    ...(to === '' ? {} : { to }),
    amount,
  });
  return JSON.stringify({ legs: moves.map(leg) });
}

// b at a ceiling of the bigint's limit: any money in is limit_exceeded, and overflow after it.
const bAtCeiling = usd('b', full, 0n, { maxBalance: full });

// Each fails in its second leg, the first (1 into a) passing; the legs are checked one after
// another, each against what the legs before it left, and within a leg in the declared order.
t.test('transaction: one example a code, in the order it checks them', async (t) => {
  checkExamples(t, transaction, [
    { payload: '{"legs":[{"to":"a","amount":"1"},{"amount":"1"}]}', code: 'invalid_command' },
    { payload: legs(['', 'a', '1'], ['b', 'b', '1']), rows: rows([usd('a', 0n)]), code: 'same_account' },
    {
      payload: legs(['', 'a', '1'], ['a', 'b', '9']),
      rows: rows([usd('a', 0n, 0n, frozen)]),
      code: 'account_not_found',
    },
    {
      payload: legs(['', 'a', '1'], ['a', 'b', '9']),
      rows: rows([usd('a', 0n, 0n, frozen), eur('b', 0n, closed)]),
      code: 'account_closed',
    },
    {
      payload: legs(['', 'a', '1'], ['a', 'b', '9']),
      rows: rows([usd('a', 0n, 0n, frozen), eur('b', full)]),
      code: 'currency_mismatch',
    },
    {
      payload: legs(['', 'a', '1'], ['a', 'b', '9']),
      rows: rows([usd('a', 0n, 0n, frozen), bAtCeiling]),
      code: 'account_frozen',
    },
    // The 1 the first leg brought in is there, but 2 are needed.
    {
      payload: legs(['', 'a', '1'], ['a', 'b', '2']),
      rows: rows([usd('a', 0n), bAtCeiling]),
      code: 'insufficient_funds',
    },
    {
      payload: legs(['', 'a', '1'], ['a', 'b', '2']),
      rows: rows([usd('a', 0n, 0n, { overdraftLimit: 1n }), bAtCeiling]),
      code: 'limit_exceeded',
    },
    // Legs come first: a third leg that would fail with an earlier code is never reached.
    {
      payload: legs(['', 'a', '1'], ['a', 'b', '1'], ['c', 'c', '1']),
      rows: rows([usd('a', 0n), usd('b', full)]),
      code: 'overflow',
    },
    // a spends what the first leg brought in, and b part of what the second one did.
    {
      payload: legs(['', 'a', '5'], ['a', 'b', '5'], ['b', '', '2']),
      rows: rows([usd('a', 0n), usd('b', 0n)]),
      code: 'ok',
      decision: {
        kind: 'applied',
        postings: [
          { account: 'a', balanceDelta: 5n, heldDelta: 0n },
          { account: 'a', balanceDelta: -5n, heldDelta: 0n },
          { account: 'b', balanceDelta: 5n, heldDelta: 0n },
          { account: 'b', balanceDelta: -2n, heldDelta: 0n },
        ],
      },
    },
  ]);
});
