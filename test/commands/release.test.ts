import t from 'tap';
import { release } from '../../src/commands/release.ts';
import { activeHold, checkExamples, now, rows, usd } from '../helpers/command-examples.ts';

t.test('release: one example a code, in the order it checks them', async (t) => {
  checkExamples(t, release, [
    { payload: '{"hold":"h","amount":"5"}', code: 'invalid_command' },
    { payload: '{"hold":"h"}', code: 'hold_not_found' },
    // Past its expiry by the database clock, the hold is closed though its expiry has not run yet.
    {
      payload: '{"hold":"h"}',
      rows: rows([], [activeHold('h', 'a', 1n, new Date(now.getTime() - 1))]),
      code: 'hold_closed',
    },
    {
      payload: '{"hold":"h"}',
      rows: rows([usd('a', 1n, 1n)], [activeHold('h', 'a', 1n, new Date(now.getTime() + 1))]),
      code: 'ok',
      decision: {
        kind: 'applied',
        postings: [{ account: 'a', balanceDelta: 0n, heldDelta: -1n }],
        closeHold: { hold: 'h', status: 'released', captured: 0n, capturedTo: null },
      },
    },
  ]);
});
