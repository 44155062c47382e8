import t from 'tap';
import { closeAccount } from '../../src/commands/close_account.ts';
import { checkExamples, closed, frozen, rows, usd } from '../helpers/command-examples.ts';

t.test('close_account: one example a code, in the order it checks them', async (t) => {
  checkExamples(t, closeAccount, [
    { payload: '{"account":"a","force":true}', code: 'invalid_command' },
    { payload: '{"account":"a"}', code: 'account_not_found' },
    // A closed account is empty (CHECK closed_is_empty): closing it again is account_closed.
    { payload: '{"account":"a"}', rows: rows([usd('a', 0n, 0n, closed)]), code: 'account_closed' },
    // A balance of 0 is not enough: nothing may be held either (here on the overdraft).
    {
      payload: '{"account":"a"}',
      rows: rows([usd('a', 0n, 1n, { overdraftLimit: 1n })]),
      code: 'account_not_empty',
    },
    // A frozen account closes too; its limits stay as they were.
    {
      payload: '{"account":"a"}',
      rows: rows([usd('a', 0n, 0n, { ...frozen, overdraftLimit: 5n, maxBalance: 10n })]),
      code: 'ok',
      decision: {
        kind: 'applied',
        postings: [],
        policy: { account: 'a', overdraftLimit: 5n, maxBalance: 10n, status: 'closed' },
      },
    },
  ]);
});
