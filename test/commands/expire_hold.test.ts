import t from 'tap';
import { holdExpiry } from '../../src/commands/expire_hold.ts';
import { activeHold, checkExamples, now, rows, usd } from '../helpers/command-examples.ts';

// The service's own command: it declares no code. What it can answer besides `ok` is nothing at
// all (`skipped`: no result row), and when not due yet, a time to try again.
t.test('expire_hold: each outcome, in the order it checks them', async (t) => {
  const due = new Date(now.getTime());
  checkExamples(t, holdExpiry, [
    { payload: '{"hold":""}', code: 'invalid_command' },
    {
      payload: '{"hold":"h"}',
      code: 'skipped',
      decision: { kind: 'skipped', reason: 'hold h is not active' },
    },
    {
      payload: '{"hold":"h"}',
      rows: rows([], [{ ...activeHold('h', 'a', 1n, due), status: 'released' }]),
      code: 'skipped',
      decision: { kind: 'skipped', reason: 'hold h is not active' },
    },
    {
      payload: '{"hold":"h"}',
      rows: rows([], [activeHold('h', 'a', 1n)]),
      code: 'skipped',
      decision: { kind: 'skipped', reason: 'hold h has no expiry' },
    },
    {
      payload: '{"hold":"h"}',
      rows: rows([], [activeHold('h', 'a', 1n, new Date(now.getTime() + 1))]),
      code: 'skipped',
      decision: { kind: 'skipped', reason: 'hold h is not due yet', retryAt: new Date(now.getTime() + 1) },
    },
    {
      payload: '{"hold":"h"}',
      rows: rows([usd('a', 1n, 1n)], [activeHold('h', 'a', 1n, due)]),
      code: 'ok',
      decision: {
        kind: 'applied',
        postings: [{ account: 'a', balanceDelta: 0n, heldDelta: -1n }],
        closeHold: { hold: 'h', status: 'expired', captured: 0n, capturedTo: null },
      },
    },
  ]);
});
