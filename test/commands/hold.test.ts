import t from 'tap';
import { hold } from '../../src/commands/hold.ts';
import { activeHold, checkExamples, now, rows, usd } from '../helpers/command-examples.ts';

t.test('hold: one example a code, in the order it checks them', async (t) => {
  checkExamples(t, hold, [
    {
      payload: '{"account":"a","amount":"5","expires_at":"2030-01-02T00:00:00Z","ttl_seconds":5}',
      code: 'invalid_command',
    },
    {
      payload: '{"account":"a","amount":"2","hold":"h","expires_at":"2029-12-31T23:59:59Z"}',
      rows: rows([], [activeHold('h', 'b', 1n)]),
      code: 'account_not_found',
    },
    {
      payload: '{"account":"a","amount":"2","hold":"h","expires_at":"2029-12-31T23:59:59Z"}',
      rows: rows([usd('a', 1n)], [activeHold('h', 'a', 1n)]),
      code: 'hold_exists',
    },
    // The expiry is checked against the database clock, so by the rule rather than the parser:
    // a second before it, or more than 30 days after it.
    {
      payload: '{"account":"a","amount":"2","hold":"h","expires_at":"2029-12-31T23:59:59Z"}',
      rows: rows([usd('a', 1n)]),
      code: 'invalid_command',
    },
    {
      payload: '{"account":"a","amount":"2","hold":"h","expires_at":"2030-01-31T00:00:01Z"}',
      rows: rows([usd('a', 1n)]),
      code: 'invalid_command',
    },
    {
      payload: '{"account":"a","amount":"2","hold":"h","expires_at":"2030-01-31T00:00:00Z"}',
      rows: rows([usd('a', 1n)]),
      code: 'insufficient_funds',
    },
    {
      payload: '{"id":"h","account":"a","amount":"2","ttl_seconds":60}',
      rows: rows([usd('a', 3n, 1n)]),
      code: 'ok',
      decision: {
        kind: 'applied',
        postings: [{ account: 'a', balanceDelta: 0n, heldDelta: 2n }],
        createHold: { ...activeHold('h', 'a', 2n), expiresAt: new Date(now.getTime() + 60_000) },
      },
    },
  ]);
});
