/**
 * The rules of docs/commands.md written a second time, plainly, for replaying a finished chaos run:
 * results are fed in seq order (which is commit order) and every code and every balance must come
 * out the same. It shares no code with src/ledger, so a wrong rule there is not echoed here.
 *
 * One thing a replay cannot know exactly, and how it is bounded rather than ignored: when a command
 * was decided, between its transaction's start (operations.created_at) and its commit
 * (pg_xact_commit_timestamp). A hold expiry inside that window may go either way.
 * What a command could see is not in doubt: seq order is a serial order (docs/guarantees.md, 6), so every row
 * created by a lower seq was visible to it, and a `*_not_found` for such a row is a failure.
 */

export interface ReplayOp {
  id: string;
  seq: bigint;
  type: string;
  code: string;
  /** The command as the producer sent it (expire: the hold's id). */
  payload: Record<string, unknown>;
  /** The balances the result row says it left. */
  balances: { account: string; balance: bigint; held: bigint }[];
  startedAt: Date;
  committedAt: Date;
  /** holds.expires_at of the hold this command created, if any. */
  storedExpiry: Date | null | undefined;
}

export interface Posting {
  account: string;
  balanceDelta: bigint;
  heldDelta: bigint;
}

interface Account {
  currency: string;
  balance: bigint;
  held: bigint;
  overdraftLimit: bigint;
  maxBalance: bigint | null;
  status: 'open' | 'frozen' | 'closed';
}
interface Hold {
  account: string;
  amount: bigint;
  status: 'active' | 'captured' | 'released' | 'expired';
  expiresAt: Date | null;
}

interface Verdict {
  code: string;
  postings: Posting[];
  apply?: () => void;
}

export interface ReplayOutcome {
  /** What the op was expected to post (empty unless applied). */
  postings: Posting[];
  problems: string[];
  /** The op was decided at a moment the replay could only bound (see the file comment). */
  ambiguousClock: boolean;
}

const maxInt64 = 2n ** 63n - 1n;
/** The commands that change an account's policy: their result reports its balance, unchanged. */
const policyTypes = ['set_limits', 'freeze', 'unfreeze', 'close_account'];
const maxHoldMs = 30 * 24 * 3600 * 1000;

export class LedgerModel {
  readonly accounts = new Map<string, Account>();
  readonly holds = new Map<string, Hold>();
  readonly #defaultCurrency: string;

  constructor(defaultCurrency = 'USD') {
    this.#defaultCurrency = defaultCurrency;
  }

  replay(op: ReplayOp): ReplayOutcome {
    // Decided at the transaction's start; if the rules disagree there, at its commit.
    const early = this.#decide(op, op.startedAt);
    const verdict = early.code === op.code ? early : this.#decide(op, op.committedAt);
    if (verdict.code !== op.code) {
      return {
        postings: [],
        problems: [`${op.type} ${op.id} (seq ${op.seq}): stored code ${op.code}, the rules give ${early.code}`],
        ambiguousClock: false,
      };
    }
    const problems = this.#compareBalances(op, verdict);
    verdict.apply?.();
    return { postings: verdict.postings, problems, ambiguousClock: verdict !== early };
  }

  #compareBalances(op: ReplayOp, verdict: Verdict): string[] {
    if (op.code !== 'ok') return op.balances.length ? [`${op.id}: a rejection reports balances`] : [];
    const expected = new Map<string, { balance: bigint; held: bigint }>();
    for (const p of verdict.postings) {
      const before = expected.get(p.account) ?? { ...this.accounts.get(p.account)! };
      expected.set(p.account, { balance: before.balance + p.balanceDelta, held: before.held + p.heldDelta });
    }
    if (op.type === 'open_account') expected.set(String(op.payload.account), { balance: 0n, held: 0n });
    if (policyTypes.includes(op.type)) {
      const { balance, held } = this.accounts.get(String(op.payload.account))!;
      expected.set(String(op.payload.account), { balance, held });
    }
    const problems: string[] = [];
    if (op.balances.length !== expected.size)
      problems.push(`${op.id}: reports ${op.balances.length} balances, expected ${expected.size}`);
    for (const b of op.balances) {
      const want = expected.get(b.account);
      if (!want || want.balance !== b.balance || want.held !== b.held) {
        problems.push(
          `${op.id}: reports ${b.account} at ${b.balance}/${b.held}, the replay gives ${want ? `${want.balance}/${want.held}` : 'no change'}`,
        );
      }
    }
    return problems;
  }

  #decide(op: ReplayOp, now: Date): Verdict {
    const p = op.payload;
    const account = (id: unknown) => this.accounts.get(String(id));
    const hold = (id: unknown) => this.holds.get(String(id));
    const reject = (code: string): Verdict => ({ code, postings: [] });
    const post = (postings: Posting[], after?: () => void): Verdict => ({
      code: 'ok',
      postings,
      apply: () => {
        for (const x of postings) {
          const a = this.accounts.get(x.account)!;
          a.balance += x.balanceDelta;
          a.held += x.heldDelta;
        }
        after?.();
      },
    });
    const amount = (value: unknown) => BigInt(value as string | number);
    // Money out: closed, frozen, beyond available and overdraft. Money in: closed, ceiling, bigint.
    const refusedOut = (a: Account, x: bigint) =>
      a.status === 'closed'
        ? 'account_closed'
        : a.status === 'frozen'
          ? 'account_frozen'
          : a.balance - a.held + a.overdraftLimit < x
            ? 'insufficient_funds'
            : undefined;
    const refusedIn = (a: Account, x: bigint) =>
      a.status === 'closed'
        ? 'account_closed'
        : a.maxBalance !== null && a.balance + x > a.maxBalance
          ? 'limit_exceeded'
          : a.balance + x > maxInt64
            ? 'overflow'
            : undefined;
    const policy = (id: unknown, change: Partial<Account>): Verdict =>
      post([], () => Object.assign(this.accounts.get(String(id))!, change));
    switch (op.type) {
      case 'open_account': {
        const existing = account(p.account);
        if (existing) return reject(existing.status === 'closed' ? 'account_closed' : 'account_exists');
        return post([], () => {
          this.accounts.set(String(p.account), {
            currency: typeof p.currency === 'string' ? p.currency : this.#defaultCurrency,
            balance: 0n,
            held: 0n,
            overdraftLimit: 0n,
            maxBalance: null,
            status: 'open',
          });
        });
      }
      case 'credit': {
        const a = account(p.account);
        if (!a) return reject('account_not_found');
        const refused = refusedIn(a, amount(p.amount));
        if (refused) return reject(refused);
        return post([{ account: String(p.account), balanceDelta: amount(p.amount), heldDelta: 0n }]);
      }
      case 'debit': {
        const a = account(p.account);
        if (!a) return reject('account_not_found');
        const refused = refusedOut(a, amount(p.amount));
        if (refused) return reject(refused);
        return post([{ account: String(p.account), balanceDelta: -amount(p.amount), heldDelta: 0n }]);
      }
      case 'transfer': {
        if (p.from === p.to) return reject('same_account');
        const from = account(p.from);
        if (!from) return reject('account_not_found');
        const to = account(p.to);
        if (!to) return reject('account_not_found');
        if (from.status === 'closed' || to.status === 'closed') return reject('account_closed');
        if (from.currency !== to.currency) return reject('currency_mismatch');
        const x = amount(p.amount);
        const refused = refusedOut(from, x) ?? refusedIn(to, x);
        if (refused) return reject(refused);
        return post([
          { account: String(p.from), balanceDelta: -x, heldDelta: 0n },
          { account: String(p.to), balanceDelta: x, heldDelta: 0n },
        ]);
      }
      case 'hold': {
        const a = account(p.account);
        if (!a) return reject('account_not_found');
        if (a.status === 'closed') return reject('account_closed');
        const holdId = String(p.hold ?? p.id);
        // A hold id is taken under its key lock, so an existing one is always seen.
        if (this.holds.has(holdId)) return reject('hold_exists');
        let expiresAt: Date | null = null;
        if (typeof p.expires_at === 'string') expiresAt = new Date(p.expires_at);
        else if (p.ttl_seconds !== undefined)
          expiresAt = op.storedExpiry ?? new Date(now.getTime() + Number(p.ttl_seconds) * 1000);
        if (typeof p.expires_at === 'string' && expiresAt) {
          if (expiresAt.getTime() <= now.getTime()) return reject('invalid_command');
          if (expiresAt.getTime() - now.getTime() > maxHoldMs) return reject('invalid_command');
        }
        const x = amount(p.amount);
        const refused = refusedOut(a, x);
        if (refused) return reject(refused);
        if (a.held + x > maxInt64) return reject('overflow');
        return post([{ account: String(p.account), balanceDelta: 0n, heldDelta: x }], () => {
          this.holds.set(holdId, { account: String(p.account), amount: x, status: 'active', expiresAt });
        });
      }
      case 'capture': {
        const h = hold(p.hold);
        if (!h) return reject('hold_not_found');
        if (h.status !== 'active' || (h.expiresAt && h.expiresAt.getTime() <= now.getTime()))
          return reject('hold_closed');
        const x = p.amount === undefined ? h.amount : amount(p.amount);
        if (x > h.amount) return reject('amount_exceeds_hold');
        const source = this.accounts.get(h.account);
        if (!source) return reject('account_not_found');
        const to = p.to === undefined ? undefined : account(p.to);
        if (p.to !== undefined && !to) return reject('account_not_found');
        if (source.status === 'closed' || to?.status === 'closed') return reject('account_closed');
        if (to && to.currency !== source.currency) return reject('currency_mismatch');
        if (source.status === 'frozen') return reject('account_frozen');
        const release: Posting = { account: h.account, balanceDelta: -x, heldDelta: -h.amount };
        const close = () => {
          h.status = 'captured';
        };
        if (!to) return post([release], close);
        // Captured back to its own account, the money leaves and returns.
        const refused = to === source ? undefined : refusedIn(to, x);
        if (refused) return reject(refused);
        return post([release, { account: String(p.to), balanceDelta: x, heldDelta: 0n }], close);
      }
      case 'release': {
        const h = hold(p.hold);
        if (!h) return reject('hold_not_found');
        if (h.status !== 'active' || (h.expiresAt && h.expiresAt.getTime() <= now.getTime()))
          return reject('hold_closed');
        return post([{ account: h.account, balanceDelta: 0n, heldDelta: -h.amount }], () => {
          h.status = 'released';
        });
      }
      case 'expire': {
        const h = this.holds.get(String(p.hold));
        // An expiry that is not due writes no row: a row means it was due and active.
        if (!h || h.status !== 'active' || !h.expiresAt || h.expiresAt.getTime() > now.getTime())
          return reject('(no expiry due)');
        return post([{ account: h.account, balanceDelta: 0n, heldDelta: -h.amount }], () => {
          h.status = 'expired';
        });
      }
      case 'set_limits': {
        const a = account(p.account);
        if (!a) return reject('account_not_found');
        if (a.status === 'closed') return reject('account_closed');
        const overdraftLimit = p.overdraft_limit === undefined ? a.overdraftLimit : amount(p.overdraft_limit);
        const maxBalance =
          p.max_balance === undefined ? a.maxBalance : p.max_balance === null ? null : amount(p.max_balance);
        if (a.balance - a.held < -overdraftLimit || (maxBalance !== null && a.balance > maxBalance))
          return reject('limit_below_usage');
        return policy(p.account, { overdraftLimit, maxBalance });
      }
      case 'freeze':
      case 'unfreeze': {
        const a = account(p.account);
        if (!a) return reject('account_not_found');
        if (a.status === 'closed') return reject('account_closed');
        return policy(p.account, { status: op.type === 'freeze' ? 'frozen' : 'open' });
      }
      case 'close_account': {
        const a = account(p.account);
        if (!a) return reject('account_not_found');
        if (a.status === 'closed') return reject('account_closed');
        if (a.balance !== 0n || a.held !== 0n) return reject('account_not_empty');
        return policy(p.account, { status: 'closed' });
      }
      default:
        return reject(`(unknown type ${op.type})`);
    }
  }
}
