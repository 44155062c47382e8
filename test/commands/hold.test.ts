import t from 'tap';
import { hold } from '../../src/commands/hold.ts';
import { activeHold, checkExamples, closed, frozen, full, now, rows, usd } from '../helpers/command-examples.ts';

// An expiry a second in the past: the rule refuses it, but only after the account and the hold id.
const expired = '"expires_at":"2029-12-31T23:59:59Z"';

t.test('hold: one example a code, in the order it checks them', async (t) => {
  checkExamples(t, hold, [
    {
      payload: '{"account":"a","amount":"5","expires_at":"2030-01-02T00:00:00Z","ttl_seconds":5}',
      code: 'invalid_command',
    },
    {
      payload: `{"account":"a","amount":"2","hold":"h",${expired}}`,
      rows: rows([], [activeHold('h', 'b', 1n)]),
      code: 'account_not_found',
    },
    {
      payload: `{"account":"a","amount":"2","hold":"h",${expired}}`,
      rows: rows([usd('a', 0n, 0n, closed)], [activeHold('h', 'b', 1n)]),
      code: 'account_closed',
    },
    {
      payload: `{"account":"a","amount":"2","hold":"h",${expired}}`,
      rows: rows([usd('a', 1n, 0n, frozen)], [activeHold('h', 'a', 1n)]),
      code: 'hold_exists',
    },
    // The expiry is checked against the database clock, so by the rule rather than the parser:
    // a second before it, or more than 30 days after it; before the account's status and funds.
    {
      payload: `{"account":"a","amount":"2","hold":"h",${expired}}`,
      rows: rows([usd('a', 1n, 0n, frozen)]),
      code: 'invalid_command',
    },
    {
      payload: '{"account":"a","amount":"2","hold":"h","expires_at":"2030-01-31T00:00:01Z"}',
      rows: rows([usd('a', 1n, 0n, frozen)]),
      code: 'invalid_command',
    },
    {
      payload: '{"account":"a","amount":"2","hold":"h","expires_at":"2030-01-31T00:00:00Z"}',
      rows: rows([usd('a', 1n, 0n, frozen)]),
      code: 'account_frozen',
    },
    // Nothing available, and held at the bigint's limit: the funds answer before held's overflow.
    {
      payload: '{"account":"a","amount":"2","hold":"h"}',
      rows: rows([usd('a', full, full)]),
      code: 'insufficient_funds',
    },
    // Only an overdraft near 2^63 lets held pass the balance, up to the bigint's limit.
    {
      payload: '{"account":"a","amount":"2","hold":"h"}',
      rows: rows([usd('a', full, full - 1n, { overdraftLimit: full })]),
      code: 'overflow',
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
