/**
 * A second, deliberately plain implementation of the rules in docs/commands.md (commands, hold
 * expiry, results and idempotency), for the property tests. It shares no code with src/: what the
 * worker and this model agree on, two independent readings of the rules agree on.
 *
 * Where the spec leaves an order open, the model takes the worker's documented one: a hold checks
 * its account, then its hold id, then its expiry (in the past or more than 30 days ahead:
 * `invalid_command`), then the money. Account policies (docs/commands.md, "Account policies"): the
 * request alone, then what exists, then closed, then currency, then the money's way out (frozen,
 * available + overdraft), then its way in (max_balance, the bigint's limit).
 */

const maxBigint = 9223372036854775807n;
const accountIdPattern = /^[A-Za-z0-9_.:@-]{1,64}$/;
const maxHoldMs = 30 * 24 * 60 * 60 * 1000;
/** An ISO 8601 timestamp with a zone, as the spec asks of `expires_at`. */
const timestampPattern = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

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

export interface ModelBalance {
  account: string;
  balance: bigint;
  held: bigint;
}

/** What the service must answer to one command. */
export type Prediction =
  /** a new result row with this code, and the balances it left on the accounts it touched */
  | { kind: 'result'; code: string; balances: ModelBalance[] }
  /** the same id and payload again: no new row, the first result stands */
  | { kind: 'replay'; code: string }
  /** the id again with another payload: the first result stands, the reuse is recorded */
  | { kind: 'conflict'; code: string }
  /** an expiry with nothing to do (no such active hold, no expiry, not due yet): no row at all;
   * `retryAt` is when it falls due, if it is not due yet */
  | { kind: 'skipped'; retryAt: number | null };

type Payload = Record<string, unknown>;

const allowedFields: Record<string, string[]> = {
  open_account: ['account', 'currency'],
  credit: ['account', 'amount'],
  debit: ['account', 'amount'],
  transfer: ['from', 'to', 'amount'],
  hold: ['account', 'amount', 'hold', 'expires_at', 'ttl_seconds'],
  capture: ['hold', 'amount', 'to'],
  release: ['hold'],
  set_limits: ['account', 'overdraft_limit', 'max_balance'],
  freeze: ['account'],
  unfreeze: ['account'],
  close_account: ['account'],
};
const requiredFields: Record<string, string[]> = {
  open_account: ['account'],
  credit: ['account', 'amount'],
  debit: ['account', 'amount'],
  transfer: ['from', 'to', 'amount'],
  hold: ['account', 'amount'],
  capture: ['hold'],
  release: ['hold'],
  set_limits: ['account'],
  freeze: ['account'],
  unfreeze: ['account'],
  close_account: ['account'],
};

export class ReferenceLedger {
  readonly accounts = new Map<string, ModelAccount>();
  readonly holds = new Map<string, ModelHold>();
  /** The database clock, in milliseconds since the epoch: holds expire against it. */
  now: number;
  private readonly seen = new Map<string, { key: string; code: string }>();
  private readonly defaultCurrency: string;

  constructor(defaultCurrency: string, now = 0) {
    this.defaultCurrency = defaultCurrency;
    this.now = now;
  }

  /**
   * Applies one command in order and says what the service must answer. `type` is the task name
   * (`expire_hold` for the service's own expiry); `defaultId` is the id the service gives a command
   * that brings none (or an unusable one).
   */
  submit(type: string, payload: Payload, defaultId?: string): Prediction {
    const id =
      type === 'expire_hold' ? `expire:${String(payload.hold)}` : isCommandId(payload.id) ? payload.id : defaultId;
    if (id === undefined) throw new Error(`the model needs a default id for ${stableJson(payload)}`);
    const key = `${type} ${stableJson(payload)}`;
    const earlier = this.seen.get(id);
    if (earlier)
      return earlier.key === key ? { kind: 'replay', code: earlier.code } : { kind: 'conflict', code: 'id_conflict' };
    if (type === 'expire_hold') {
      const expiry = this.expire(payload.hold as string);
      if (expiry.kind === 'skipped') return expiry;
      this.seen.set(id, { key, code: 'ok' });
      return { kind: 'result', code: 'ok', balances: this.balancesOf(expiry.touched) };
    }
    const decided = isValid(type, payload)
      ? this.decideAndApply(type, { ...payload, id })
      : { code: 'invalid_command', touched: [] };
    this.seen.set(id, { key, code: decided.code });
    return { kind: 'result', code: decided.code, balances: this.balancesOf(decided.touched) };
  }

  private balancesOf(accounts: string[]): ModelBalance[] {
    return [...new Set(accounts)].map((account) => {
      const { balance, held } = this.accounts.get(account)!;
      return { account, balance, held };
    });
  }

  /** Open for capture and release: active, and its expiry (if any) not reached by the clock. */
  private isOpen(hold: ModelHold): boolean {
    return hold.status === 'active' && (hold.expiresAt === null || hold.expiresAt > this.now);
  }

  private expire(holdId: string): { kind: 'skipped'; retryAt: number | null } | { kind: 'applied'; touched: string[] } {
    const hold = this.holds.get(holdId);
    if (!hold || hold.status !== 'active' || hold.expiresAt === null) return { kind: 'skipped', retryAt: null };
    if (hold.expiresAt > this.now) return { kind: 'skipped', retryAt: hold.expiresAt };
    this.accounts.get(hold.account)!.held -= hold.amount;
    hold.status = 'expired';
    return { kind: 'applied', touched: [hold.account] };
  }

  private decideAndApply(type: string, p: Payload): { code: string; touched: string[] } {
    const rejected = (code: string) => ({ code, touched: [] });
    const ok = (...touched: string[]) => ({ code: 'ok', touched });
    switch (type) {
      case 'open_account': {
        const account = p.account as string;
        const existing = this.accounts.get(account);
        if (existing?.status === 'closed') return rejected('account_closed');
        if (existing) return rejected('account_exists');
        this.accounts.set(account, {
          currency: (p.currency as string | undefined) ?? this.defaultCurrency,
          balance: 0n,
          held: 0n,
          overdraftLimit: 0n,
          maxBalance: null,
          status: 'open',
        });
        return ok(account);
      }
      case 'credit': {
        const account = this.accounts.get(p.account as string);
        const amount = toAmount(p.amount);
        if (!account) return rejected('account_not_found');
        const refused = refusedIn(account, amount);
        if (refused) return rejected(refused);
        account.balance += amount;
        return ok(p.account as string);
      }
      case 'debit': {
        const account = this.accounts.get(p.account as string);
        const amount = toAmount(p.amount);
        if (!account) return rejected('account_not_found');
        const refused = refusedOut(account, amount);
        if (refused) return rejected(refused);
        account.balance -= amount;
        return ok(p.account as string);
      }
      case 'transfer': {
        if (p.from === p.to) return rejected('same_account');
        const from = this.accounts.get(p.from as string);
        const to = this.accounts.get(p.to as string);
        const amount = toAmount(p.amount);
        if (!from || !to) return rejected('account_not_found');
        if (from.status === 'closed' || to.status === 'closed') return rejected('account_closed');
        if (from.currency !== to.currency) return rejected('currency_mismatch');
        const refused = refusedOut(from, amount) ?? refusedIn(to, amount);
        if (refused) return rejected(refused);
        from.balance -= amount;
        to.balance += amount;
        return ok(p.from as string, p.to as string);
      }
      case 'hold': {
        const account = this.accounts.get(p.account as string);
        const amount = toAmount(p.amount);
        const holdId = (p.hold as string | undefined) ?? (p.id as string);
        if (!account) return rejected('account_not_found');
        if (account.status === 'closed') return rejected('account_closed');
        if (this.holds.has(holdId)) return rejected('hold_exists');
        const expiresAt =
          p.expires_at !== undefined
            ? Date.parse(p.expires_at as string)
            : p.ttl_seconds !== undefined
              ? this.now + (p.ttl_seconds as number) * 1000
              : null;
        if (expiresAt !== null && (expiresAt <= this.now || expiresAt - this.now > maxHoldMs))
          return rejected('invalid_command');
        const refused = refusedOut(account, amount);
        if (refused) return rejected(refused);
        if (account.held + amount > maxBigint) return rejected('overflow');
        account.held += amount;
        this.holds.set(holdId, { account: p.account as string, amount, status: 'active', expiresAt });
        return ok(p.account as string);
      }
      case 'capture': {
        const hold = this.holds.get(p.hold as string);
        if (!hold) return rejected('hold_not_found');
        if (!this.isOpen(hold)) return rejected('hold_closed');
        const amount = p.amount === undefined ? hold.amount : toAmount(p.amount);
        if (amount > hold.amount) return rejected('amount_exceeds_hold');
        const source = this.accounts.get(hold.account)!;
        const to = p.to === undefined ? undefined : this.accounts.get(p.to as string);
        if (p.to !== undefined && !to) return rejected('account_not_found');
        if (source.status === 'closed' || to?.status === 'closed') return rejected('account_closed');
        if (to && to.currency !== source.currency) return rejected('currency_mismatch');
        // A capture takes the frozen account's held money: not while it is frozen.
        if (source.status === 'frozen') return rejected('account_frozen');
        if (!to) {
          source.held -= hold.amount;
          source.balance -= amount;
          hold.status = 'captured';
          return ok(hold.account);
        }
        // The captured money leaves the source before it reaches `to` (which may be the source).
        const refused = to === source ? undefined : refusedIn(to, amount);
        if (refused) return rejected(refused);
        source.held -= hold.amount;
        source.balance -= amount;
        to.balance += amount;
        hold.status = 'captured';
        return ok(hold.account, p.to as string);
      }
      case 'release': {
        const hold = this.holds.get(p.hold as string);
        if (!hold) return rejected('hold_not_found');
        if (!this.isOpen(hold)) return rejected('hold_closed');
        this.accounts.get(hold.account)!.held -= hold.amount;
        hold.status = 'released';
        return ok(hold.account);
      }
      case 'set_limits': {
        const account = this.accounts.get(p.account as string);
        if (!account) return rejected('account_not_found');
        if (account.status === 'closed') return rejected('account_closed');
        const overdraft = p.overdraft_limit === undefined ? account.overdraftLimit : toLimit(p.overdraft_limit);
        const max =
          p.max_balance === undefined ? account.maxBalance : p.max_balance === null ? null : toLimit(p.max_balance);
        if (account.balance - account.held < -overdraft) return rejected('limit_below_usage');
        if (max !== null && account.balance > max) return rejected('limit_below_usage');
        account.overdraftLimit = overdraft;
        account.maxBalance = max;
        return ok(p.account as string);
      }
      case 'freeze':
      case 'unfreeze': {
        const account = this.accounts.get(p.account as string);
        if (!account) return rejected('account_not_found');
        if (account.status === 'closed') return rejected('account_closed');
        account.status = type === 'freeze' ? 'frozen' : 'open';
        return ok(p.account as string);
      }
      case 'close_account': {
        const account = this.accounts.get(p.account as string);
        if (!account) return rejected('account_not_found');
        if (account.status === 'closed') return rejected('account_closed');
        if (account.balance !== 0n || account.held !== 0n) return rejected('account_not_empty');
        account.status = 'closed';
        return ok(p.account as string);
      }
      default:
        throw new Error(`the model does not know ${type}`);
    }
  }
}

/** Why money may not leave the account, or undefined: closed, frozen, beyond available and overdraft. */
function refusedOut(account: ModelAccount, amount: bigint): string | undefined {
  if (account.status === 'closed') return 'account_closed';
  if (account.status === 'frozen') return 'account_frozen';
  if (account.balance - account.held + account.overdraftLimit < amount) return 'insufficient_funds';
  return undefined;
}

/** Why money may not come in, or undefined: closed, above max_balance, above the bigint's limit. */
function refusedIn(account: ModelAccount, amount: bigint): string | undefined {
  if (account.status === 'closed') return 'account_closed';
  if (account.maxBalance !== null && account.balance + amount > account.maxBalance) return 'limit_exceeded';
  if (account.balance + amount > maxBigint) return 'overflow';
  return undefined;
}

function isCommandId(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= 128;
}

function isValid(type: string, p: Payload): boolean {
  const allowed = ['id', 'metadata', ...allowedFields[type]!];
  if (Object.keys(p).some((field) => !allowed.includes(field))) return false;
  if (requiredFields[type]!.some((field) => p[field] === undefined)) return false;
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
  return true;
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
    return amount <= maxBigint ? amount : null;
  }
  if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) return BigInt(value);
  return null;
}

function toLimit(value: unknown): bigint {
  const limit = toLimitOrNull(value);
  if (limit === null) throw new Error(`not a limit: ${String(value)}`);
  return limit;
}

/** An amount, or zero ("0" or 0). */
function toLimitOrNull(value: unknown): bigint | null {
  return value === '0' || value === 0 ? 0n : toAmountOrNull(value);
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${stableJson((value as Payload)[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}
