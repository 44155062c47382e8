import t from 'tap';
import { openAccount } from '../../src/commands/open_account.ts';
import { checkExamples, rows, usd } from '../helpers/command-examples.ts';

t.test('open_account: one example a code, in the order it checks them', async (t) => {
  checkExamples(t, openAccount, [
    { payload: '{"account":"a","currency":"usd"}', rows: rows([usd('a', 0n)]), code: 'invalid_command' },
    { payload: '{"account":"a","currency":"EUR"}', rows: rows([usd('a', 0n)]), code: 'account_exists' },
    {
      payload: '{"account":"a"}',
      code: 'ok',
      decision: { kind: 'applied', postings: [], openAccount: { account: 'a', currency: 'USD' } },
    },
  ]);
});
