import t from 'tap';
import { debit } from '../../src/commands/debit.ts';
import { checkExamples, rows, usd } from '../helpers/command-examples.ts';

t.test('debit: one example a code, in the order it checks them', async (t) => {
  checkExamples(t, debit, [
    { payload: '{"account":"a","amount":0}', code: 'invalid_command' },
    { payload: '{"account":"a","amount":"1"}', code: 'account_not_found' },
    { payload: '{"account":"a","amount":"2"}', rows: rows([usd('a', 2n, 1n)]), code: 'insufficient_funds' },
    {
      payload: '{"account":"a","amount":"2"}',
      rows: rows([usd('a', 3n, 1n)]),
      code: 'ok',
      decision: { kind: 'applied', postings: [{ account: 'a', balanceDelta: -2n, heldDelta: 0n }] },
    },
  ]);
});
