import t from 'tap';
import { transfer } from '../../src/commands/transfer.ts';
import { checkExamples, eur, full, rows, usd } from '../helpers/command-examples.ts';

t.test('transfer: one example a code, in the order it checks them', async (t) => {
  checkExamples(t, transfer, [
    { payload: '{"from":"a","to":"a","amount":1.5}', code: 'invalid_command' },
    { payload: '{"from":"a","to":"a","amount":"1"}', code: 'same_account' },
    { payload: '{"from":"a","to":"b","amount":"2"}', rows: rows([eur('b', full)]), code: 'account_not_found' },
    {
      payload: '{"from":"a","to":"b","amount":"2"}',
      rows: rows([usd('a', 1n), eur('b', full)]),
      code: 'currency_mismatch',
    },
    {
      payload: '{"from":"a","to":"b","amount":"2"}',
      rows: rows([usd('a', 1n), usd('b', full)]),
      code: 'insufficient_funds',
    },
    { payload: '{"from":"a","to":"b","amount":"2"}', rows: rows([usd('a', 2n), usd('b', full)]), code: 'overflow' },
    {
      payload: '{"from":"a","to":"b","amount":"2"}',
      rows: rows([usd('a', 2n), usd('b', full - 2n)]),
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
