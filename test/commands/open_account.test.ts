import t from 'tap';
import { openAccount } from '../../src/commands/open_account.ts';
import { checkExamples, closed, rows, usd } from '../helpers/command-examples.ts';

t.test('open_account: one example a code, in the order it checks them', async (t) => {
  checkExamples(t, openAccount, [
    { payload: '{"account":"a","currency":"usd"}', rows: rows([usd('a', 0n)]), code: 'invalid_command' },
    // A closed account is never reopened: its id is taken, and it says it is closed, not that it exists.
    { payload: '{"account":"a","currency":"EUR"}', rows: rows([usd('a', 0n, 0n, closed)]), code: 'account_closed' },
    { payload: '{"account":"a","currency":"EUR"}', rows: rows([usd('a', 0n)]), code: 'account_exists' },
    {
      payload: '{"account":"a"}',
      code: 'ok',
      decision: { kind: 'applied', postings: [], openAccount: { account: 'a', currency: 'USD' } },
    },
  ]);
});
