import t from 'tap';
import { freeze } from '../../src/commands/freeze.ts';
import { checkExamples, closed, frozen, rows, usd } from '../helpers/command-examples.ts';

t.test('freeze: one example a code, in the order it checks them', async (t) => {
  checkExamples(t, freeze, [
    { payload: '{"account":"a","amount":"1"}', code: 'invalid_command' },
    { payload: '{"account":"a"}', code: 'account_not_found' },
    { payload: '{"account":"a"}', rows: rows([usd('a', 0n, 0n, closed)]), code: 'account_closed' },
    // Only the status changes: the limits stay.
    {
      payload: '{"account":"a"}',
      rows: rows([usd('a', 5n, 2n, { overdraftLimit: 3n, maxBalance: 9n })]),
      code: 'ok',
      decision: {
        kind: 'applied',
        postings: [],
        policy: { account: 'a', overdraftLimit: 3n, maxBalance: 9n, status: 'frozen' },
      },
    },
    // Frozen already: applied, and nothing changes.
    {
      payload: '{"account":"a"}',
      rows: rows([usd('a', 5n, 2n, frozen)]),
      code: 'ok',
      decision: {
        kind: 'applied',
        postings: [],
        policy: { account: 'a', overdraftLimit: 0n, maxBalance: null, status: 'frozen' },
      },
    },
  ]);
});
