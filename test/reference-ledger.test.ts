import t from 'tap';
import { ReferenceLedger, type ReplayOp } from '../model/reference-ledger.ts';

// The replay of the chaos checks (model/reference-ledger.ts) allows nothing but the clock window:
// a stored code or balance the rules do not give, an expiry that was not due, a second result for
// an id, each is a problem. Without a database: the rows are written here as the chaos run reads them.

const start = new Date('2026-03-01T12:00:00.000Z');
const at = (ms: number) => new Date(start.getTime() + ms);
let seq = 0n;
function op(
  id: string,
  type: string,
  code: string,
  payload: Record<string, unknown>,
  balances: [string, bigint, bigint][] = [],
  times: { startedAt?: Date; committedAt?: Date; storedExpiry?: Date } = {},
): ReplayOp {
  return {
    id,
    seq: ++seq,
    type,
    code,
    payload: { id, ...payload },
    balances: balances.map(([account, balance, held]) => ({ account, balance, held })),
    startedAt: times.startedAt ?? start,
    committedAt: times.committedAt ?? times.startedAt ?? start,
    storedExpiry: times.storedExpiry,
  };
}

/** An account's policy as open_account leaves it. */
const openNoLimits = { overdraftLimit: 0n, maxBalance: null, status: 'open' } as const;

function opened(): ReferenceLedger {
  const model = new ReferenceLedger('USD');
  for (const replayed of [
    op('open-a', 'open_account', 'ok', { account: 'a' }, [['a', 0n, 0n]]),
    op('open-b', 'open_account', 'ok', { account: 'b' }, [['b', 0n, 0n]]),
    op('seed-a', 'credit', 'ok', { account: 'a', amount: '100' }, [['a', 100n, 0n]]),
  ]) {
    const outcome = model.replay(replayed);
    if (outcome.problems.length) throw new Error(outcome.problems.join('; '));
  }
  return model;
}

t.test('results as the rules give them replay without a problem, and post what the rules post', async (t) => {
  const model = opened();
  const transfer = model.replay(
    op('t1', 'transfer', 'ok', { from: 'a', to: 'b', amount: 30 }, [
      ['a', 70n, 0n],
      ['b', 30n, 0n],
    ]),
  );
  t.same(transfer.problems, []);
  t.same(transfer.postings, [
    { account: 'a', balanceDelta: -30n, heldDelta: 0n },
    { account: 'b', balanceDelta: 30n, heldDelta: 0n },
  ]);
  t.same(model.replay(op('d1', 'debit', 'insufficient_funds', { account: 'b', amount: '31' })).problems, []);
  t.same(model.accounts.get('a'), { ...openNoLimits, currency: 'USD', balance: 70n, held: 0n });
});

t.test('a code the rules do not give is a problem, and changes nothing', async (t) => {
  const model = opened();
  const outcome = model.replay(op('d1', 'debit', 'ok', { account: 'a', amount: '101' }, [['a', -1n, 0n]]));
  t.match(outcome.problems, [/stored code ok, the rules give insufficient_funds/]);
  t.same(model.accounts.get('a'), { ...openNoLimits, currency: 'USD', balance: 100n, held: 0n });
});

t.test('a balance the rules do not give is a problem, and so is one too many or too few', async (t) => {
  const model = opened();
  t.match(model.replay(op('c1', 'credit', 'ok', { account: 'a', amount: '1' }, [['a', 102n, 0n]])).problems, [
    /reports a at 102\/0, the replay gives 101\/0/,
  ]);
  t.match(model.replay(op('c2', 'credit', 'ok', { account: 'a', amount: '1' })).problems, [
    /reports 0 balances, expected 1/,
  ]);
  t.match(
    model.replay(op('d2', 'debit', 'insufficient_funds', { account: 'b', amount: '1' }, [['b', 0n, 0n]])).problems,
    [/a rejection reports balances/],
  );
});

t.test('an expiry row for a hold that was not due, at the start or the commit, is a problem', async (t) => {
  const model = opened();
  const hold = op('h1', 'hold', 'ok', { account: 'a', amount: '10', ttl_seconds: 2 }, [['a', 100n, 10n]], {
    storedExpiry: at(2000),
  });
  t.same(model.replay(hold).problems, []);
  t.equal(model.holds.get('h1')?.expiresAt, at(2000).getTime(), 'the expiry the database stamped');
  const early = op('expire:h1', 'expire', 'ok', { hold: 'h1' }, [['a', 100n, 0n]], {
    startedAt: at(1000),
    committedAt: at(1999),
  });
  t.match(model.replay(early).problems, [/stored code ok, the rules give \(no expiry due\)/]);
  t.equal(model.holds.get('h1')?.status, 'active');
});

t.test('a decision inside the clock window is bounded, not ignored: it may go either way', async (t) => {
  const model = opened();
  model.replay(op('h1', 'hold', 'ok', { account: 'a', amount: '10', ttl_seconds: 2 }, [['a', 100n, 10n]]));
  // Started before the hold's expiry, committed after it: a release refused as closed is possible.
  const release = model.replay(
    op('r1', 'release', 'hold_closed', { hold: 'h1' }, [], { startedAt: at(1500), committedAt: at(2500) }),
  );
  t.same(release.problems, []);
  t.equal(release.ambiguousClock, true);
  t.equal(
    model.replay(op('expire:h1', 'expire', 'ok', { hold: 'h1' }, [['a', 100n, 0n]], { startedAt: at(2600) }))
      .ambiguousClock,
    false,
  );
});

t.test('a second result for one id is a problem', async (t) => {
  const model = opened();
  t.match(model.replay(op('seed-a', 'credit', 'ok', { account: 'a', amount: '100' }, [['a', 200n, 0n]])).problems, [
    /a second result for this id/,
  ]);
});

t.test('submit and replay share the rules: a capture back to its own account cannot overflow', async (t) => {
  const model = new ReferenceLedger('USD');
  model.submit('open_account', { id: 'o', account: 'a' });
  model.submit('credit', { id: 'c', account: 'a', amount: '9223372036854775807' });
  model.submit('hold', { id: 'h', account: 'a', amount: '10' });
  t.same(model.submit('capture', { id: 'x', hold: 'h', to: 'a' }), {
    kind: 'result',
    code: 'ok',
    balances: [{ account: 'a', balance: 9223372036854775807n, held: 0n }],
  });
  t.same(model.submit('capture', { id: 'x', hold: 'h', to: 'a' }), { kind: 'replay', code: 'ok' });
  t.same(model.submit('release', { id: 'x', hold: 'h' }), { kind: 'conflict', code: 'id_conflict' });
});

t.test('policy commands replay in seq order: every later result is judged under them', async (t) => {
  const model = opened();
  t.same(model.replay(op('f1', 'freeze', 'ok', { account: 'a' }, [['a', 100n, 0n]])).problems, []);
  const debit = model.replay(op('d2', 'debit', 'ok', { account: 'a', amount: '1' }, [['a', 99n, 0n]]));
  t.match(debit.problems, [/stored code ok, the rules give account_frozen/], 'money out of a frozen account');
  t.same(model.replay(op('u1', 'unfreeze', 'ok', { account: 'a' }, [['a', 100n, 0n]])).problems, []);
  t.same(
    model.replay(op('l1', 'set_limits', 'ok', { account: 'a', overdraft_limit: '50' }, [['a', 100n, 0n]])).problems,
    [],
  );
  t.same(model.replay(op('d3', 'debit', 'ok', { account: 'a', amount: '150' }, [['a', -50n, 0n]])).problems, []);
  t.match(
    model.replay(op('l2', 'set_limits', 'ok', { account: 'a', overdraft_limit: '10' }, [['a', -50n, 0n]])).problems,
    [/the rules give limit_below_usage/],
  );
  t.match(
    model.replay(op('c1', 'close_account', 'ok', { account: 'b' }, [['b', 5n, 0n]])).problems,
    [/reports b at 5\/0, the replay gives 0\/0/],
    'a policy result reports the balance it left, unchanged',
  );
  t.same(model.replay(op('o1', 'open_account', 'account_closed', { account: 'b' })).problems, [], 'never reopened');
  t.same(model.accounts.get('a'), {
    currency: 'USD',
    balance: -50n,
    held: 0n,
    overdraftLimit: 50n,
    maxBalance: null,
    status: 'open',
  });
});
