import t from 'tap';
import { unfreeze } from '../../src/commands/freeze.ts';
import { checkExamples, closed, frozen, rows, usd } from '../helpers/command-examples.ts';

t.test('unfreeze: one example a code, in the order it checks them', async (t) => {
  checkExamples(t, unfreeze, [
    { payload: '{"account":""}', code: 'invalid_command' },
    { payload: '{"account":"a"}', code: 'account_not_found' },
    { payload: '{"account":"a"}', rows: rows([usd('a', 0n, 0n, closed)]), code: 'account_closed' },
    // Only the status changes: the limits stay.
    {
      payload: '{"account":"a"}',
      rows: rows([usd('a', 5n, 2n, { ...frozen, overdraftLimit: 3n, maxBalance: 9n })]),
      code: 'ok',
      decision: {
        kind: 'applied',
        postings: [],
        policy: { account: 'a', overdraftLimit: 3n, maxBalance: 9n, status: 'open' },
      },
    },
  ]);
});
