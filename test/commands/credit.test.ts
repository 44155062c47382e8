import t from 'tap';
import { credit } from '../../src/commands/credit.ts';
import { checkExamples, full, rows, usd } from '../helpers/command-examples.ts';

t.test('credit: one example a code, in the order it checks them', async (t) => {
  checkExamples(t, credit, [
    // An amount is judged by its JSON text: 1e3 is not digits, whatever the number it parses to.
    { payload: '{"account":"a","amount":1e3}', code: 'invalid_command' },
    { payload: '{"account":"a","amount":"1"}', code: 'account_not_found' },
    { payload: '{"account":"a","amount":"1"}', rows: rows([usd('a', full)]), code: 'overflow' },
    {
      payload: '{"account":"a","amount":"1"}',
      rows: rows([usd('a', full - 1n)]),
      code: 'ok',
      decision: { kind: 'applied', postings: [{ account: 'a', balanceDelta: 1n, heldDelta: 0n }] },
    },
  ]);
});
