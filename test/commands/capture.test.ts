import t from 'tap';
import { capture } from '../../src/commands/capture.ts';
import { activeHold, checkExamples, closed, eur, frozen, full, rows, usd } from '../helpers/command-examples.ts';

// b at a ceiling of the bigint's limit: any money in is limit_exceeded, and overflow after it.
const bAtCeiling = usd('b', full, 0n, { maxBalance: full });

t.test('capture: one example a code, in the order it checks them', async (t) => {
  checkExamples(t, capture, [
    { payload: '{"hold":"h","amount":"0x10","to":"b"}', code: 'invalid_command' },
    { payload: '{"hold":"h","amount":"5","to":"b"}', code: 'hold_not_found' },
    {
      payload: '{"hold":"h","amount":"5","to":"b"}',
      rows: rows([], [{ ...activeHold('h', 'a', 1n), status: 'released' }]),
      code: 'hold_closed',
    },
    {
      payload: '{"hold":"h","amount":"5","to":"b"}',
      rows: rows([], [activeHold('h', 'a', 1n)]),
      code: 'amount_exceeds_hold',
    },
    {
      payload: '{"hold":"h","amount":"1","to":"b"}',
      rows: rows([usd('a', 1n, 1n, frozen)], [activeHold('h', 'a', 1n)]),
      code: 'account_not_found',
    },
    // A closed account is empty, so it has no active hold: `to` is the one that can be closed.
    {
      payload: '{"hold":"h","amount":"1","to":"b"}',
      rows: rows([usd('a', 1n, 1n, frozen), eur('b', 0n, closed)], [activeHold('h', 'a', 1n)]),
      code: 'account_closed',
    },
    {
      payload: '{"hold":"h","amount":"1","to":"b"}',
      rows: rows([usd('a', 1n, 1n, frozen), eur('b', full)], [activeHold('h', 'a', 1n)]),
      code: 'currency_mismatch',
    },
    {
      payload: '{"hold":"h","amount":"1","to":"b"}',
      rows: rows([usd('a', 1n, 1n, frozen), bAtCeiling], [activeHold('h', 'a', 1n)]),
      code: 'account_frozen',
    },
    {
      payload: '{"hold":"h","amount":"1","to":"b"}',
      rows: rows([usd('a', 1n, 1n), bAtCeiling], [activeHold('h', 'a', 1n)]),
      code: 'limit_exceeded',
    },
    {
      payload: '{"hold":"h","amount":"1","to":"b"}',
      rows: rows([usd('a', 1n, 1n), usd('b', full)], [activeHold('h', 'a', 1n)]),
      code: 'overflow',
    },
    // Captured back to its own account, the money leaves and returns: no overflow or ceiling at the limit.
    {
      payload: '{"hold":"h","to":"a"}',
      rows: rows([usd('a', full, 5n, { maxBalance: full })], [activeHold('h', 'a', 5n)]),
      code: 'ok',
      decision: {
        kind: 'applied',
        postings: [
          { account: 'a', balanceDelta: -5n, heldDelta: -5n },
          { account: 'a', balanceDelta: 5n, heldDelta: 0n },
        ],
        closeHold: { hold: 'h', status: 'captured', captured: 5n, capturedTo: 'a' },
      },
    },
    // Part of the hold, to an account filled up to its ceiling: the rest is released.
    {
      payload: '{"hold":"h","amount":"3","to":"b"}',
      rows: rows([usd('a', 5n, 5n), usd('b', 0n, 0n, { maxBalance: 3n })], [activeHold('h', 'a', 5n)]),
      code: 'ok',
      decision: {
        kind: 'applied',
        postings: [
          { account: 'a', balanceDelta: -3n, heldDelta: -5n },
          { account: 'b', balanceDelta: 3n, heldDelta: 0n },
        ],
        closeHold: { hold: 'h', status: 'captured', captured: 3n, capturedTo: 'b' },
      },
    },
  ]);
});
