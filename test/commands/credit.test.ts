import t from 'tap';
import { credit } from '../../src/commands/credit.ts';
import { checkExamples, closed, full, rows, usd } from '../helpers/command-examples.ts';

t.test('credit: one example a code, in the order it checks them', async (t) => {
  checkExamples(t, credit, [
    // An amount is judged by its JSON text: 1e3 is not digits, whatever the number it parses to.
    { payload: '{"account":"a","amount":1e3}', code: 'invalid_command' },
    { payload: '{"account":"a","amount":"1"}', code: 'account_not_found' },
    // A closed account is empty, so it cannot be at the bigint's limit; its ceiling of 0 would refuse too.
    {
      payload: '{"account":"a","amount":"1"}',
      rows: rows([usd('a', 0n, 0n, { ...closed, maxBalance: 0n })]),
      code: 'account_closed',
    },
    {
      payload: '{"account":"a","amount":"2"}',
      rows: rows([usd('a', full - 1n, 0n, { maxBalance: full - 1n })]),
      code: 'limit_exceeded',
    },
    { payload: '{"account":"a","amount":"1"}', rows: rows([usd('a', full)]), code: 'overflow' },
    // Up to the ceiling and the bigint's limit, both included.
    {
      payload: '{"account":"a","amount":"1"}',
      rows: rows([usd('a', full - 1n, 0n, { maxBalance: full })]),
      code: 'ok',
      decision: { kind: 'applied', postings: [{ account: 'a', balanceDelta: 1n, heldDelta: 0n }] },
    },
  ]);
});
