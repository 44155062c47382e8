/**
 * The reference model's ledger (rules.ts has the rules): accounts, holds and results by command id,
 * driven two ways.
 *
 * - `submit`, for the property tests: a payload as a client (or the service's expiry) sends it, in
 *   order; the model says what the service must answer (a new result, a replay, an id conflict, or
 *   an expiry skipped) and applies it.
 * - `replay`, for the chaos run's checks: a stored result, fed in seq order (which is commit order);
 *   every code and every balance must come out the same, with no allowance. What a command could see
 *   is not in doubt: seq order is a serial order (docs/guarantees.md, 6), so every row created by a
 *   lower seq was visible to it, and a `*_not_found` for such a row is a failure. One thing a replay
 *   cannot know exactly, and how it is bounded rather than ignored: when a command was decided,
 *   between its transaction's start (operations.created_at) and its commit
 *   (pg_xact_commit_timestamp). A hold expiry inside that window may go either way.
 */
import {
  type Clock,
  commands,
  isCommandId,
  isValid,
  type ModelAccount,
  type ModelHold,
  type ModelOperation,
  type ModelState,
  type Payload,
  type Posting,
  type Verdict,
} from './rules.ts';

export type { ModelAccount, ModelHold, Payload, Posting } from './rules.ts';

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

/** One stored result, as the replay reads it. */
export interface ReplayOp {
  id: string;
  seq: bigint;
  /** billing.operations.type (`expire` for the service's hold expiry). */
  type: string;
  code: string;
  /** The command as the producer sent it (expire: the hold's id). */
  payload: Payload;
  /** The balances the result row says it left. */
  balances: ModelBalance[];
  startedAt: Date;
  committedAt: Date;
  /** holds.expires_at of the hold this command created, if any. */
  storedExpiry: Date | null | undefined;
}

export interface ReplayOutcome {
  /** What the op was expected to post (empty unless applied). */
  postings: Posting[];
  problems: string[];
  /** The op was decided at a moment the replay could only bound (see the file comment). */
  ambiguousClock: boolean;
}

/** The service's task for a hold's expiry, and the type of the result row it writes. */
const expiryTask = 'expire_hold';
const expiryType = 'expire';

export class ReferenceLedger implements ModelState {
  readonly accounts = new Map<string, ModelAccount>();
  readonly holds = new Map<string, ModelHold>();
  readonly operations = new Map<string, ModelOperation>();
  readonly reversed = new Map<string, bigint>();
  readonly defaultCurrency: string;
  /** The database clock for `submit`, in milliseconds since the epoch: holds expire against it. */
  now: number;
  /** Every result by command id: what was sent (type and payload, to tell a replay from a reuse) and its code. */
  readonly #results = new Map<string, { key: string; code: string }>();

  constructor(defaultCurrency: string, now = 0) {
    this.defaultCurrency = defaultCurrency;
    this.now = now;
  }

  /**
   * Applies one command in order and says what the service must answer. `task` is the task name
   * (`expire_hold` for the service's own expiry); `defaultId` is the id the service gives a command
   * that brings none (or an unusable one).
   */
  submit(task: string, payload: Payload, defaultId?: string): Prediction {
    const type = task === expiryTask ? expiryType : task;
    const id =
      type === expiryType ? `expire:${String(payload.hold)}` : isCommandId(payload.id) ? payload.id : defaultId;
    if (id === undefined) throw new Error(`the model needs a default id for ${stableJson(payload)}`);
    const key = `${task} ${stableJson(payload)}`;
    const earlier = this.#results.get(id);
    if (earlier)
      return earlier.key === key ? { kind: 'replay', code: earlier.code } : { kind: 'conflict', code: 'id_conflict' };
    const verdict = this.#decide(type, payload, id, { now: this.now });
    if (verdict.kind === 'skipped') return verdict;
    const code = codeOf(verdict);
    this.#results.set(id, { key, code });
    this.#record(id, type, verdict);
    const touched = this.#apply(verdict);
    return { kind: 'result', code, balances: touched.map((account) => this.#balanceOf(account)) };
  }

  /** Replays one stored result (the next in seq order) and says where it differs from the rules. */
  replay(op: ReplayOp): ReplayOutcome {
    const decideAt = (at: Date) =>
      this.#decide(op.type, op.payload, op.id, { now: at.getTime(), ttlExpiry: op.storedExpiry?.getTime() });
    // Decided at the transaction's start; if the rules disagree there, at its commit.
    const early = decideAt(op.startedAt);
    const verdict = codeOf(early) === op.code ? early : decideAt(op.committedAt);
    if (codeOf(verdict) !== op.code) {
      return {
        postings: [],
        problems: [`${op.type} ${op.id} (seq ${op.seq}): stored code ${op.code}, the rules give ${codeOf(early)}`],
        ambiguousClock: false,
      };
    }
    const problems = this.#results.has(op.id) ? [`${op.id} (seq ${op.seq}): a second result for this id`] : [];
    problems.push(...this.#compareBalances(op, verdict));
    this.#results.set(op.id, { key: `${op.type} ${stableJson(op.payload)}`, code: op.code });
    this.#record(op.id, op.type, verdict);
    this.#apply(verdict);
    return {
      postings: verdict.kind === 'applied' ? verdict.postings : [],
      problems,
      ambiguousClock: verdict !== early,
    };
  }

  /**
   * A client's payload is checked first, as sent (invalid_command); the service's expiry is not a
   * client's. The rule then reads it with the id the command goes by.
   */
  #decide(type: string, payload: Payload, id: string, clock: Clock): Verdict {
    const command = commands[type];
    if (!command) throw new Error(`the model does not know ${type}`);
    if (command.fields && !isValid(type, payload)) return { kind: 'rejected', code: 'invalid_command' };
    return command.decide(this, { ...payload, id }, clock);
  }

  /** What a later reversal reads of this command. */
  #record(id: string, type: string, verdict: Verdict): void {
    const applied = verdict.kind === 'applied';
    this.operations.set(id, { type, applied, postings: applied ? verdict.postings : [] });
  }

  /** Applies a verdict; returns the accounts whose balances its result reports, each once. */
  #apply(verdict: Verdict): string[] {
    if (verdict.kind !== 'applied') return [];
    for (const posting of verdict.postings) {
      const account = this.accounts.get(posting.account)!;
      account.balance += posting.balanceDelta;
      account.held += posting.heldDelta;
    }
    verdict.change?.();
    return reportedAccounts(verdict);
  }

  #balanceOf(account: string): ModelBalance {
    const { balance, held } = this.accounts.get(account)!;
    return { account, balance, held };
  }

  #compareBalances(op: ReplayOp, verdict: Verdict): string[] {
    if (verdict.kind !== 'applied') return op.balances.length ? [`${op.id}: a rejection reports balances`] : [];
    const expected = new Map<string, { balance: bigint; held: bigint }>();
    if (verdict.opens !== undefined) expected.set(verdict.opens, { balance: 0n, held: 0n });
    if (verdict.governs !== undefined) expected.set(verdict.governs, this.#balanceOf(verdict.governs));
    for (const p of verdict.postings) {
      const before = expected.get(p.account) ?? this.#balanceOf(p.account);
      expected.set(p.account, { balance: before.balance + p.balanceDelta, held: before.held + p.heldDelta });
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
}

function codeOf(verdict: Verdict): string {
  if (verdict.kind === 'applied') return 'ok';
  // An expiry that is not due writes no row: a row means it was due and active.
  return verdict.kind === 'rejected' ? verdict.code : '(no expiry due)';
}

function reportedAccounts(verdict: Verdict & { kind: 'applied' }): string[] {
  const accounts = verdict.postings.map((p) => p.account);
  const named = [verdict.opens, verdict.governs].filter((account) => account !== undefined);
  return [...new Set([...named, ...accounts])];
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
