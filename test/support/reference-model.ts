/**
 * A second, deliberately plain implementation of SPEC section 2 (commands) and section 3
 * (idempotency), for the property tests. It shares no code with src/: what the worker and this
 * model agree on, two independent readings of the spec agree on.
 */

const maxBigint = 9223372036854775807n;
const accountIdPattern = /^[A-Za-z0-9_.:@-]{1,64}$/;

export interface ModelAccount {
  currency: string;
  balance: bigint;
  held: bigint;
}

export interface ModelHold {
  account: string;
  amount: bigint;
  status: 'active' | 'captured' | 'released';
}

/** What the service must answer to one command. */
export type Prediction =
  /** a new result row with this code */
  | { kind: 'result'; code: string }
  /** the same id and payload again: no new row, the first result stands */
  | { kind: 'replay'; code: string }
  /** the id again with another payload: the first result stands, the reuse is recorded */
  | { kind: 'conflict'; code: string };

type Payload = Record<string, unknown>;

const allowedFields: Record<string, string[]> = {
  open_account: ['account', 'currency'],
  credit: ['account', 'amount'],
  debit: ['account', 'amount'],
  transfer: ['from', 'to', 'amount'],
  hold: ['account', 'amount', 'hold'],
  capture: ['hold', 'amount', 'to'],
  release: ['hold'],
};
const requiredFields: Record<string, string[]> = {
  open_account: ['account'],
  credit: ['account', 'amount'],
  debit: ['account', 'amount'],
  transfer: ['from', 'to', 'amount'],
  hold: ['account', 'amount'],
  capture: ['hold'],
  release: ['hold'],
};

export class ReferenceLedger {
  readonly accounts = new Map<string, ModelAccount>();
  readonly holds = new Map<string, ModelHold>();
  private readonly seen = new Map<string, { key: string; code: string }>();
  private readonly defaultCurrency: string;

  constructor(defaultCurrency: string) {
    this.defaultCurrency = defaultCurrency;
  }

  /** Applies one command in order and says what the service must answer. */
  submit(type: string, payload: Payload): Prediction {
    const id = payload.id as string;
    const key = `${type} ${stableJson(payload)}`;
    const earlier = this.seen.get(id);
    if (earlier) return earlier.key === key ? { kind: 'replay', code: earlier.code } : { kind: 'conflict', code: 'id_conflict' };
    const code = isValid(type, payload) ? this.decideAndApply(type, payload) : 'invalid_command';
    this.seen.set(id, { key, code });
    return { kind: 'result', code };
  }

  private decideAndApply(type: string, p: Payload): string {
    switch (type) {
      case 'open_account': {
        const account = p.account as string;
        if (this.accounts.has(account)) return 'account_exists';
        this.accounts.set(account, { currency: (p.currency as string | undefined) ?? this.defaultCurrency, balance: 0n, held: 0n });
        return 'ok';
      }
      case 'credit': {
        const account = this.accounts.get(p.account as string);
        const amount = toAmount(p.amount);
        if (!account) return 'account_not_found';
        if (account.balance + amount > maxBigint) return 'overflow';
        account.balance += amount;
        return 'ok';
      }
      case 'debit': {
        const account = this.accounts.get(p.account as string);
        const amount = toAmount(p.amount);
        if (!account) return 'account_not_found';
        if (account.balance - account.held < amount) return 'insufficient_funds';
        account.balance -= amount;
        return 'ok';
      }
      case 'transfer': {
        if (p.from === p.to) return 'same_account';
        const from = this.accounts.get(p.from as string);
        const to = this.accounts.get(p.to as string);
        const amount = toAmount(p.amount);
        if (!from || !to) return 'account_not_found';
        if (from.currency !== to.currency) return 'currency_mismatch';
        if (from.balance - from.held < amount) return 'insufficient_funds';
        if (to.balance + amount > maxBigint) return 'overflow';
        from.balance -= amount;
        to.balance += amount;
        return 'ok';
      }
      case 'hold': {
        const account = this.accounts.get(p.account as string);
        const amount = toAmount(p.amount);
        const holdId = (p.hold as string | undefined) ?? (p.id as string);
        if (!account) return 'account_not_found';
        if (this.holds.has(holdId)) return 'hold_exists';
        if (account.balance - account.held < amount) return 'insufficient_funds';
        account.held += amount;
        this.holds.set(holdId, { account: p.account as string, amount, status: 'active' });
        return 'ok';
      }
      case 'capture': {
        const hold = this.holds.get(p.hold as string);
        if (!hold) return 'hold_not_found';
        if (hold.status !== 'active') return 'hold_closed';
        const amount = p.amount === undefined ? hold.amount : toAmount(p.amount);
        if (amount > hold.amount) return 'amount_exceeds_hold';
        const source = this.accounts.get(hold.account)!;
        if (p.to === undefined) {
          source.held -= hold.amount;
          source.balance -= amount;
        } else {
          const to = this.accounts.get(p.to as string);
          if (!to) return 'account_not_found';
          if (to.currency !== source.currency) return 'currency_mismatch';
          // The captured money leaves the source before it reaches `to` (which may be the source).
          if (to !== source && to.balance + amount > maxBigint) return 'overflow';
          source.held -= hold.amount;
          source.balance -= amount;
          to.balance += amount;
        }
        hold.status = 'captured';
        return 'ok';
      }
      case 'release': {
        const hold = this.holds.get(p.hold as string);
        if (!hold) return 'hold_not_found';
        if (hold.status !== 'active') return 'hold_closed';
        this.accounts.get(hold.account)!.held -= hold.amount;
        hold.status = 'released';
        return 'ok';
      }
      default:
        throw new Error(`the model does not know ${type}`);
    }
  }
}

function isValid(type: string, p: Payload): boolean {
  const allowed = ['id', 'metadata', ...allowedFields[type]!];
  if (Object.keys(p).some((field) => !allowed.includes(field))) return false;
  if (requiredFields[type]!.some((field) => p[field] === undefined)) return false;
  if (typeof p.id !== 'string' || p.id.length < 1 || p.id.length > 128) return false;
  for (const field of ['account', 'from', 'to']) {
    if (p[field] !== undefined && !(typeof p[field] === 'string' && accountIdPattern.test(p[field]))) return false;
  }
  if (p.hold !== undefined && !(typeof p.hold === 'string' && p.hold.length >= 1 && p.hold.length <= 128)) return false;
  if (p.currency !== undefined && !(typeof p.currency === 'string' && /^[A-Z]{3}$/.test(p.currency))) return false;
  if (p.amount !== undefined && toAmountOrNull(p.amount) === null) return false;
  if (p.metadata !== undefined && (typeof p.metadata !== 'object' || p.metadata === null || Array.isArray(p.metadata))) return false;
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

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((key) => `${JSON.stringify(key)}:${stableJson((value as Payload)[key])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
