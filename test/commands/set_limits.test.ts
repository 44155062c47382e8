import t from 'tap';
import { setLimits } from '../../src/commands/set_limits.ts';
import { checkExamples, closed, frozen, rows, usd } from '../helpers/command-examples.ts';

t.test('set_limits: one example a code, in the order it checks them', async (t) => {
  checkExamples(t, setLimits, [
    { payload: '{"account":"a"}', code: 'invalid_command' },
    { payload: '{"account":"a","overdraft_limit":"0"}', code: 'account_not_found' },
    {
      payload: '{"account":"a","overdraft_limit":"5"}',
      rows: rows([usd('a', 0n, 0n, closed)]),
      code: 'account_closed',
    },
    // Available -5 needs an overdraft of 5, and a balance of 10 a ceiling of 10: both too low.
    {
      payload: '{"account":"a","overdraft_limit":"4","max_balance":"9"}',
      rows: rows([usd('a', 10n, 15n, { overdraftLimit: 10n })]),
      code: 'limit_below_usage',
    },
    // The limits down to what the account uses, the ceiling removed (null); the status stays.
    {
      payload: '{"account":"a","overdraft_limit":"5","max_balance":null}',
      rows: rows([usd('a', 10n, 15n, { overdraftLimit: 10n, maxBalance: 100n, ...frozen })]),
      code: 'ok',
      decision: {
        kind: 'applied',
        postings: [],
        policy: { account: 'a', overdraftLimit: 5n, maxBalance: null, status: 'frozen' },
      },
    },
    // Absent, a limit stays as it was.
    {
      payload: '{"account":"a","max_balance":"10"}',
      rows: rows([usd('a', 10n, 15n, { overdraftLimit: 5n })]),
      code: 'ok',
      decision: {
        kind: 'applied',
        postings: [],
        policy: { account: 'a', overdraftLimit: 5n, maxBalance: 10n, status: 'open' },
      },
    },
  ]);
});
