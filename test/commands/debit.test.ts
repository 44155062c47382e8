import t from 'tap';
import { debit } from '../../src/commands/debit.ts';
import { checkExamples, closed, frozen, rows, usd } from '../helpers/command-examples.ts';

t.test('debit: one example a code, in the order it checks them', async (t) => {
  checkExamples(t, debit, [
    { payload: '{"account":"a","amount":0}', code: 'invalid_command' },
    { payload: '{"account":"a","amount":"1"}', code: 'account_not_found' },
    { payload: '{"account":"a","amount":"2"}', rows: rows([usd('a', 0n, 0n, closed)]), code: 'account_closed' },
    { payload: '{"account":"a","amount":"2"}', rows: rows([usd('a', 1n, 0n, frozen)]), code: 'account_frozen' },
    // Available 1 (2 less 1 held) and an overdraft of 10: 11 may leave, not 12.
    {
      payload: '{"account":"a","amount":"12"}',
      rows: rows([usd('a', 2n, 1n, { overdraftLimit: 10n })]),
      code: 'insufficient_funds',
    },
    {
      payload: '{"account":"a","amount":"11"}',
      rows: rows([usd('a', 2n, 1n, { overdraftLimit: 10n })]),
      code: 'ok',
      decision: { kind: 'applied', postings: [{ account: 'a', balanceDelta: -11n, heldDelta: 0n }] },
    },
  ]);
});
