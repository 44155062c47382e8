/**
 * The rules of docs/commands.md written a second time, plainly: the reference model, the oracle of
 * the property tests (test/plan.property.test.ts, test/model.test.ts) and of the chaos run's replay
 * (chaos/checks.ts, test/serial-order.test.ts). It shares no code with src/ (eslint.config.js
 * forbids it), so what the service and this model agree on, two independent readings of the rules
 * agree on: a wrong rule in src/commands is not echoed here.
 *
 * It has a folder of its own because it belongs to neither of its users: the tests and the chaos
 * suite both import it, and neither imports the other's internals for it.
 *
 * One entry per command type (the stored type: `expire` is the service's hold expiry, task
 * `expire_hold`): its payload fields, and `decide`, which reads the state and says what the command
 * does without changing anything. reference-ledger.ts applies the verdict, keeps results by id, and
 * drives the model from submitted payloads (the property tests) or from stored results (the replay).
 * Where the spec leaves an order open, the model takes the worker's documented one: a hold checks
 * its account, then its hold id, then its expiry (in the past or more than 30 days ahead:
 * `invalid_command`), then the money. Account policies (docs/commands.md, "Account policies"): the
 * request alone, then what exists, then closed, then currency, then the money's way out (frozen,
 * available + overdraft), then its way in (max_balance, the bigint's limit).
 */

export const maxInt64 = 2n ** 63n - 1n;
export const maxHoldMs = 30 * 24 * 60 * 60 * 1000;
const accountIdPattern = /^[A-Za-z0-9_.:@-]{1,64}$/;
/** An ISO 8601 timestamp with a zone, as the spec asks of `expires_at`. */
const timestampPattern = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

export type Payload = Record<string, unknown>;

export interface ModelAccount {
  currency: string;
  balance: bigint;
  held: bigint;
  overdraftLimit: bigint;
  /** null: no ceiling. */
  maxBalance: bigint | null;
  status: 'open' | 'frozen' | 'closed';
}

export interface ModelHold {
  account: string;
  amount: bigint;
  status: 'active' | 'captured' | 'released' | 'expired';
  /** Milliseconds since the epoch, or null for a hold that never expires. */
  expiresAt: number | null;
}

/** A command's result as a reversal reads it: its type, whether it applied, and what it posted. */
export interface ModelOperation {
  type: string;
  applied: boolean;
  postings: Posting[];
}

/** Everything a command can read: plain maps, keyed by account id, hold id and command id. */
export interface ModelState {
  readonly accounts: Map<string, ModelAccount>;
  readonly holds: Map<string, ModelHold>;
  readonly defaultCurrency: string;
  /** Every command that has a result, by id (a reversal looks up the one it names). */
  readonly operations: Map<string, ModelOperation>;
  /** What reversals have put back of a command so far, by its id. */
  readonly reversed: Map<string, bigint>;
}

/** When the command is decided. */
export interface Clock {
  /** The database clock, in milliseconds since the epoch: holds expire against it. */
  now: number;
  /** The expiry the database stamped on a ttl_seconds hold, when the caller read it (the replay). */
  ttlExpiry?: number | undefined;
}

/** One change to an account's balance and held amount. */
export interface Posting {
  account: string;
  balanceDelta: bigint;
  heldDelta: bigint;
}

export type Verdict =
  | {
      kind: 'applied';
      /** What the command moves, applied to the accounts' balances in order. */
      postings: Posting[];
      /** An account the command opens: its result reports it (at 0/0) though nothing is posted to it. */
      opens?: string;
      /** An account whose policy the command changes: its result reports its balance, unchanged. */
      governs?: string;
      /** The changes besides the postings (an account created, a hold's status), run after them. */
      change?: () => void;
    }
  | { kind: 'rejected'; code: string }
  /** An expiry with nothing to do (no such active hold, no expiry, not due yet): no result row. */
  | { kind: 'skipped'; retryAt: number | null };

export interface ModelCommand {
  /**
   * The payload fields a client may send besides id and metadata, and those it must send. The
   * service's own expiry has none: its payload is never a client's.
   */
  fields?: { allowed: readonly string[]; required: readonly string[] };
  /** The rule: what the command does to `state` at `clock`, without changing anything yet. */
  decide(state: ModelState, p: Payload, clock: Clock): Verdict;
}

const rejected = (code: string): Verdict => ({ kind: 'rejected', code });
const applied = (postings: Posting[], change?: () => void): Verdict => ({
  kind: 'applied',
  postings,
  ...(change && { change }),
});
const available = (account: ModelAccount) => account.balance - account.held;

/** Why money may not leave the account, or undefined: closed, frozen, beyond available and overdraft. */
function refusedOut(account: ModelAccount, amount: bigint): Verdict | undefined {
  if (account.status === 'closed') return rejected('account_closed');
  if (account.status === 'frozen') return rejected('account_frozen');
  if (available(account) + account.overdraftLimit < amount) return rejected('insufficient_funds');
  return undefined;
}

/** Why money may not come in, or undefined: closed, above max_balance, above the bigint's limit. */
function refusedIn(account: ModelAccount, amount: bigint): Verdict | undefined {
  if (account.status === 'closed') return rejected('account_closed');
  if (account.maxBalance !== null && account.balance + amount > account.maxBalance) return rejected('limit_exceeded');
  if (account.balance + amount > maxInt64) return rejected('overflow');
  return undefined;
}

/** A policy command's verdict: the account's policy changes, its balance is reported as it is. */
const governs = (account: string, change: () => void): Verdict => ({
  kind: 'applied',
  postings: [],
  governs: account,
  change,
});

/** The account a policy command names, or why the command ends before its own check. */
function governed(state: ModelState, p: Payload): ModelAccount | Verdict {
  const account = state.accounts.get(p.account as string);
  if (!account) return rejected('account_not_found');
  if (account.status === 'closed') return rejected('account_closed');
  return account;
}
/** Open for capture and release: active, and its expiry (if any) not reached by the clock. */
const isOpen = (hold: ModelHold, now: number) =>
  hold.status === 'active' && (hold.expiresAt === null || hold.expiresAt > now);

export const commands: Record<string, ModelCommand> = {
  open_account: {
    fields: { allowed: ['account', 'currency'], required: ['account'] },
    decide(state, p) {
      const account = p.account as string;
      const existing = state.accounts.get(account);
      // A closed account is never reopened: its id stays taken.
      if (existing?.status === 'closed') return rejected('account_closed');
      if (existing) return rejected('account_exists');
      const currency = (p.currency as string | undefined) ?? state.defaultCurrency;
      return {
        kind: 'applied',
        postings: [],
        opens: account,
        change: () =>
          state.accounts.set(account, {
            currency,
            balance: 0n,
            held: 0n,
            overdraftLimit: 0n,
            maxBalance: null,
            status: 'open',
          }),
      };
    },
  },

  credit: {
    fields: { allowed: ['account', 'amount'], required: ['account', 'amount'] },
    decide(state, p) {
      const account = state.accounts.get(p.account as string);
      const amount = toAmount(p.amount);
      if (!account) return rejected('account_not_found');
      const refused = refusedIn(account, amount);
      if (refused) return refused;
      return applied([{ account: p.account as string, balanceDelta: amount, heldDelta: 0n }]);
    },
  },

  debit: {
    fields: { allowed: ['account', 'amount'], required: ['account', 'amount'] },
    decide(state, p) {
      const account = state.accounts.get(p.account as string);
      const amount = toAmount(p.amount);
      if (!account) return rejected('account_not_found');
      const refused = refusedOut(account, amount);
      if (refused) return refused;
      return applied([{ account: p.account as string, balanceDelta: -amount, heldDelta: 0n }]);
    },
  },

  transfer: {
    fields: { allowed: ['from', 'to', 'amount'], required: ['from', 'to', 'amount'] },
    decide(state, p) {
      if (p.from === p.to) return rejected('same_account');
      const from = state.accounts.get(p.from as string);
      const to = state.accounts.get(p.to as string);
      const amount = toAmount(p.amount);
      if (!from || !to) return rejected('account_not_found');
      if (from.status === 'closed' || to.status === 'closed') return rejected('account_closed');
      if (from.currency !== to.currency) return rejected('currency_mismatch');
      const refused = refusedOut(from, amount) ?? refusedIn(to, amount);
      if (refused) return refused;
      return applied([
        { account: p.from as string, balanceDelta: -amount, heldDelta: 0n },
        { account: p.to as string, balanceDelta: amount, heldDelta: 0n },
      ]);
    },
  },

  hold: {
    fields: { allowed: ['account', 'amount', 'hold', 'expires_at', 'ttl_seconds'], required: ['account', 'amount'] },
    decide(state, p, { now, ttlExpiry }) {
      const account = state.accounts.get(p.account as string);
      const amount = toAmount(p.amount);
      const holdId = (p.hold as string | undefined) ?? (p.id as string);
      if (!account) return rejected('account_not_found');
      if (account.status === 'closed') return rejected('account_closed');
      if (state.holds.has(holdId)) return rejected('hold_exists');
      let expiresAt: number | null = null;
      if (p.expires_at !== undefined) {
        expiresAt = Date.parse(p.expires_at as string);
        if (expiresAt <= now || expiresAt - now > maxHoldMs) return rejected('invalid_command');
      } else if (p.ttl_seconds !== undefined) {
        // A ttl within the 30 days (the payload's check) counts from the clock: always in range.
        expiresAt = ttlExpiry ?? now + (p.ttl_seconds as number) * 1000;
      }
      const refused = refusedOut(account, amount);
      if (refused) return refused;
      // Only an overdraft near 2^63 lets holds reserve more than the balance: held is a bigint too.
      if (account.held + amount > maxInt64) return rejected('overflow');
      return applied([{ account: p.account as string, balanceDelta: 0n, heldDelta: amount }], () =>
        state.holds.set(holdId, { account: p.account as string, amount, status: 'active', expiresAt }),
      );
    },
  },

  capture: {
    fields: { allowed: ['hold', 'amount', 'to'], required: ['hold'] },
    decide(state, p, { now }) {
      const hold = state.holds.get(p.hold as string);
      if (!hold) return rejected('hold_not_found');
      if (!isOpen(hold, now)) return rejected('hold_closed');
      const amount = p.amount === undefined ? hold.amount : toAmount(p.amount);
      if (amount > hold.amount) return rejected('amount_exceeds_hold');
      const source = state.accounts.get(hold.account)!;
      const close = () => {
        hold.status = 'captured';
      };
      const fromHold: Posting = { account: hold.account, balanceDelta: -amount, heldDelta: -hold.amount };
      const to = p.to === undefined ? undefined : state.accounts.get(p.to as string);
      if (p.to !== undefined && !to) return rejected('account_not_found');
      if (source.status === 'closed' || to?.status === 'closed') return rejected('account_closed');
      if (to && to.currency !== source.currency) return rejected('currency_mismatch');
      // A capture takes a frozen account's held money: not while it is frozen.
      if (source.status === 'frozen') return rejected('account_frozen');
      if (!to) return applied([fromHold], close);
      // The captured money leaves the source before it reaches `to` (which may be the source).
      const refused = to === source ? undefined : refusedIn(to, amount);
      if (refused) return refused;
      return applied([fromHold, { account: p.to as string, balanceDelta: amount, heldDelta: 0n }], close);
    },
  },

  release: {
    fields: { allowed: ['hold'], required: ['hold'] },
    decide(state, p, { now }) {
      const hold = state.holds.get(p.hold as string);
      if (!hold) return rejected('hold_not_found');
      if (!isOpen(hold, now)) return rejected('hold_closed');
      return applied([{ account: hold.account, balanceDelta: 0n, heldDelta: -hold.amount }], () => {
        hold.status = 'released';
      });
    },
  },

  transaction: {
    fields: { allowed: ['legs'], required: ['legs'] },
    decide(state, p) {
      const legs = (p.legs as Payload[]).map((leg) => ({
        from: leg.from as string | undefined,
        to: leg.to as string | undefined,
        amount: toAmount(leg.amount),
      }));
      return applyLegs(state, legs);
    },
  },

  reverse: {
    fields: { allowed: ['of', 'amount'], required: ['of'] },
    decide(state, p) {
      const of = p.of as string;
      const original = state.operations.get(of);
      if (!original) return rejected('operation_not_found');
      if (!original.applied || !moneyMoves.includes(original.type)) return rejected('not_reversible');
      if (p.amount !== undefined && original.type === 'transaction') return rejected('not_reversible');
      const moves = original.postings.filter((m) => m.balanceDelta !== 0n);
      const net = new Map<string, bigint>();
      for (const m of moves) net.set(m.account, (net.get(m.account) ?? 0n) + m.balanceDelta);
      if ([...net.values()].every((d) => d === 0n)) return rejected('not_reversible');
      const size = (m: Posting) => (m.balanceDelta < 0n ? -m.balanceDelta : m.balanceDelta);
      // A transaction is put back whole, once: 1 of 1. A single move: its amount, in parts.
      const total = original.type === 'transaction' ? 1n : moves.reduce((a, m) => (size(m) > a ? size(m) : a), 0n);
      const already = state.reversed.get(of) ?? 0n;
      const part = p.amount === undefined ? total - already : toAmount(p.amount);
      if (already === total || already + part > total) return rejected('amount_exceeds_remaining');
      // Each move the other way, the last first.
      const legs = [...moves].reverse().map((m) => {
        const amount = (size(m) * part) / total;
        return m.balanceDelta > 0n ? { from: m.account, amount } : { to: m.account, amount };
      });
      const verdict = applyLegs(state, legs);
      if (verdict.kind !== 'applied') return verdict;
      return applied(verdict.postings, () => state.reversed.set(of, already + part));
    },
  },

  set_limits: {
    fields: { allowed: ['account', 'overdraft_limit', 'max_balance'], required: ['account'] },
    decide(state, p) {
      const account = governed(state, p);
      if ('kind' in account) return account;
      const overdraft = p.overdraft_limit === undefined ? account.overdraftLimit : toLimit(p.overdraft_limit);
      const max =
        p.max_balance === undefined ? account.maxBalance : p.max_balance === null ? null : toLimit(p.max_balance);
      // A new limit never puts the account in breach at once.
      if (available(account) < -overdraft) return rejected('limit_below_usage');
      if (max !== null && account.balance > max) return rejected('limit_below_usage');
      return governs(p.account as string, () => {
        account.overdraftLimit = overdraft;
        account.maxBalance = max;
      });
    },
  },

  freeze: {
    fields: { allowed: ['account'], required: ['account'] },
    decide(state, p) {
      const account = governed(state, p);
      if ('kind' in account) return account;
      return governs(p.account as string, () => {
        account.status = 'frozen';
      });
    },
  },

  unfreeze: {
    fields: { allowed: ['account'], required: ['account'] },
    decide(state, p) {
      const account = governed(state, p);
      if ('kind' in account) return account;
      return governs(p.account as string, () => {
        account.status = 'open';
      });
    },
  },

  close_account: {
    fields: { allowed: ['account'], required: ['account'] },
    decide(state, p) {
      const account = governed(state, p);
      if ('kind' in account) return account;
      if (account.balance !== 0n || account.held !== 0n) return rejected('account_not_empty');
      return governs(p.account as string, () => {
        account.status = 'closed';
      });
    },
  },

  expire: {
    decide(state, p, { now }) {
      const hold = state.holds.get(p.hold as string);
      if (!hold || hold.status !== 'active' || hold.expiresAt === null) return { kind: 'skipped', retryAt: null };
      if (hold.expiresAt > now) return { kind: 'skipped', retryAt: hold.expiresAt };
      return applied([{ account: hold.account, balanceDelta: 0n, heldDelta: -hold.amount }], () => {
        hold.status = 'expired';
      });
    },
  },
};

/** The commands a reversal can put back. */
const moneyMoves = ['credit', 'debit', 'transfer', 'capture', 'transaction'];

/**
 * Legs one after another, each against what the legs before it left (copies of the accounts), all
 * or none: per leg same_account, account_not_found, currency_mismatch, the money out, the money in.
 */
function applyLegs(
  state: ModelState,
  legs: { from?: string | undefined; to?: string | undefined; amount: bigint }[],
): Verdict {
  const after = new Map<string, ModelAccount>();
  const read = (id: string) => {
    if (!after.has(id)) {
      const account = state.accounts.get(id);
      if (!account) return undefined;
      after.set(id, { ...account });
    }
    return after.get(id);
  };
  const postings: Posting[] = [];
  for (const leg of legs) {
    if (leg.from !== undefined && leg.from === leg.to) return rejected('same_account');
    const from = leg.from === undefined ? undefined : read(leg.from);
    if (leg.from !== undefined && !from) return rejected('account_not_found');
    const to = leg.to === undefined ? undefined : read(leg.to);
    if (leg.to !== undefined && !to) return rejected('account_not_found');
    if (from?.status === 'closed' || to?.status === 'closed') return rejected('account_closed');
    if (from && to && from.currency !== to.currency) return rejected('currency_mismatch');
    const refused = (from && refusedOut(from, leg.amount)) || (to && refusedIn(to, leg.amount));
    if (refused) return refused;
    if (from) {
      from.balance -= leg.amount;
      postings.push({ account: leg.from!, balanceDelta: -leg.amount, heldDelta: 0n });
    }
    if (to) {
      to.balance += leg.amount;
      postings.push({ account: leg.to!, balanceDelta: leg.amount, heldDelta: 0n });
    }
  }
  return applied(postings);
}

export function isCommandId(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= 128;
}

/** Whether a client's payload is a command of `type` at all; if not, the answer is invalid_command. */
export function isValid(type: string, p: Payload): boolean {
  const fields = commands[type]?.fields;
  if (!fields) throw new Error(`the model has no client command ${type}`);
  const allowed = ['id', 'metadata', ...fields.allowed];
  if (Object.keys(p).some((field) => !allowed.includes(field))) return false;
  if (fields.required.some((field) => p[field] === undefined)) return false;
  if (p.id !== undefined && !isCommandId(p.id)) return false;
  for (const field of ['account', 'from', 'to']) {
    if (p[field] !== undefined && !(typeof p[field] === 'string' && accountIdPattern.test(p[field]))) return false;
  }
  if (p.hold !== undefined && !(typeof p.hold === 'string' && p.hold.length >= 1 && p.hold.length <= 128)) return false;
  if (p.currency !== undefined && !(typeof p.currency === 'string' && /^[A-Z]{3}$/.test(p.currency))) return false;
  if (p.amount !== undefined && toAmountOrNull(p.amount) === null) return false;
  if (p.overdraft_limit !== undefined && toLimitOrNull(p.overdraft_limit) === null) return false;
  if (p.max_balance !== undefined && p.max_balance !== null && toLimitOrNull(p.max_balance) === null) return false;
  if (type === 'set_limits' && p.overdraft_limit === undefined && p.max_balance === undefined) return false;
  if (p.metadata !== undefined && (typeof p.metadata !== 'object' || p.metadata === null || Array.isArray(p.metadata)))
    return false;
  if (p.expires_at !== undefined && !(typeof p.expires_at === 'string' && timestampPattern.test(p.expires_at)))
    return false;
  if (
    p.ttl_seconds !== undefined &&
    !(Number.isInteger(p.ttl_seconds) && (p.ttl_seconds as number) > 0 && (p.ttl_seconds as number) * 1000 <= maxHoldMs)
  )
    return false;
  if (p.expires_at !== undefined && p.ttl_seconds !== undefined) return false;
  if (p.legs !== undefined && !validLegs(p.legs)) return false;
  if (p.of !== undefined && !(typeof p.of === 'string' && p.of.length >= 1 && [...p.of].length <= 128)) return false;
  return true;
}

/** 1 to 64 legs, each an object of from, to (at least one of them) and amount. */
function validLegs(legs: unknown): boolean {
  if (!Array.isArray(legs) || legs.length < 1 || legs.length > 64) return false;
  return legs.every((leg: unknown) => {
    if (typeof leg !== 'object' || leg === null || Array.isArray(leg)) return false;
    const l = leg as Payload;
    if (Object.keys(l).some((key) => !['from', 'to', 'amount'].includes(key))) return false;
    if (l.from === undefined && l.to === undefined) return false;
    for (const side of [l.from, l.to])
      if (side !== undefined && !(typeof side === 'string' && accountIdPattern.test(side))) return false;
    return toAmountOrNull(l.amount) !== null;
  });
}

function toAmount(value: unknown): bigint {
  const amount = toAmountOrNull(value);
  if (amount === null) throw new Error(`not an amount: ${String(value)}`);
  return amount;
}

/** A positive whole number: a string of digits without a leading zero, or a safe JSON integer. */
function toAmountOrNull(value: unknown): bigint | null {
  if (typeof value === 'string') {
    if (!/^[1-9][0-9]*$/.test(value)) return null;
    const amount = BigInt(value);
    return amount <= maxInt64 ? amount : null;
  }
  if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) return BigInt(value);
  return null;
}

function toLimit(value: unknown): bigint {
  const limit = toLimitOrNull(value);
  if (limit === null) throw new Error(`not a limit: ${String(value)}`);
  return limit;
}

/** A limit (overdraft_limit, max_balance): an amount, or zero ("0" or 0). */
function toLimitOrNull(value: unknown): bigint | null {
  return value === '0' || value === 0 ? 0n : toAmountOrNull(value);
}
