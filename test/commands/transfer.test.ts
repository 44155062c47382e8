import t from 'tap';
import { transfer } from '../../src/commands/transfer.ts';
import { checkExamples, closed, eur, frozen, full, rows, usd } from '../helpers/command-examples.ts';

// b at its ceiling of the bigint's limit: any money in is limit_exceeded, and overflow after it.
const bAtCeiling = usd('b', full - 1n, 0n, { maxBalance: full - 1n });

t.test('transfer: one example a code, in the order it checks them', async (t) => {
  checkExamples(t, transfer, [
    { payload: '{"from":"a","to":"a","amount":1.5}', code: 'invalid_command' },
    { payload: '{"from":"a","to":"a","amount":"1"}', code: 'same_account' },
    { payload: '{"from":"a","to":"b","amount":"2"}', rows: rows([eur('b', full)]), code: 'account_not_found' },
    // Closed before anything else, whichever side: here the receiving one, the sender being frozen and short.
    {
      payload: '{"from":"a","to":"b","amount":"2"}',
      rows: rows([usd('a', 1n, 0n, frozen), eur('b', 0n, closed)]),
      code: 'account_closed',
    },
    {
      payload: '{"from":"a","to":"b","amount":"2"}',
      rows: rows([usd('a', 1n, 0n, frozen), eur('b', full)]),
      code: 'currency_mismatch',
    },
    {
      payload: '{"from":"a","to":"b","amount":"2"}',
      rows: rows([usd('a', 1n, 0n, frozen), bAtCeiling]),
      code: 'account_frozen',
    },
    {
      payload: '{"from":"a","to":"b","amount":"2"}',
      rows: rows([usd('a', 1n), bAtCeiling]),
      code: 'insufficient_funds',
    },
    {
      payload: '{"from":"a","to":"b","amount":"2"}',
      rows: rows([usd('a', 1n, 0n, { overdraftLimit: 1n }), bAtCeiling]),
      code: 'limit_exceeded',
    },
    { payload: '{"from":"a","to":"b","amount":"2"}', rows: rows([usd('a', 2n), usd('b', full)]), code: 'overflow' },
    // The sender's overdraft used up to its limit, the receiver filled up to its ceiling.
    {
      payload: '{"from":"a","to":"b","amount":"2"}',
      rows: rows([usd('a', 1n, 0n, { overdraftLimit: 1n }), usd('b', 3n, 0n, { maxBalance: 5n })]),
      code: 'ok',
      decision: {
        kind: 'applied',
        postings: [
          { account: 'a', balanceDelta: -2n, heldDelta: 0n },
          { account: 'b', balanceDelta: 2n, heldDelta: 0n },
        ],
      },
    },
  ]);
});
