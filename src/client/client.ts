import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { commandTypes, type CommandType } from '../commands/command.ts';
import { resultsChannel } from '../commands/contract.ts';
import { parseCommand } from '../commands/parse.ts';
import { writableUrl } from '../db/hosts.ts';
import { createPool } from '../db/pool.ts';
import { isTransientError } from '../db/errors.ts';
import { balanceAt } from './balance-at.ts';
import { ClientClosedError } from './errors.ts';
import { ResultListener } from './listener.ts';
import { fallbackCheckMs, PendingResults, spaceAfter } from './pending.ts';
import { toPayload } from './payload.ts';
import { accountColumns, resultColumns, toAccount, toStoredResult, type AccountRow, type ResultRow } from './rows.ts';
import type { Account, BalanceAt, BalancePoint, CommandInputs, CommandResult, StoredResult } from './types.ts';

export interface BillingClientOptions {
  /** The billing database, e.g. process.env.DATABASE_URL. */
  connectionString: string;
  /** How long a command call waits for its result after enqueueing; 0 waits forever. Default 30 s. */
  timeoutMs?: number;
  /** Connections for enqueueing and reading (the listener has one more of its own). Default 4. */
  poolSize?: number;
  /** application_name of the connections; the listener's gets `-listener` appended. */
  applicationName?: string;
  /** Told when the listener loses its connection or fails to reconnect (it keeps trying). */
  onListenerError?: (error: Error) => void;
}

export interface ResultsOptions {
  /**
   * Results with a seq above this one; 0n (the default) is from the very first; 'now' is after the
   * last result committed when the iteration starts (its first `next()`, as `for await` begins).
   */
  after?: bigint | 'now';
  /** Rows per read: a whole number of at least 1 (else a RangeError when `results()` is called). Default 500. */
  batchSize?: number;
  /** Stops the iteration (it then returns normally). */
  signal?: AbortSignal;
}

export interface HistoryOptions {
  /** Results with a seq above this one (the last seq of the previous page); default 0n. */
  after?: bigint;
  /**
   * Instead of `after`: the results just before this seq (the first seq of the next page, which is
   * older); 'end' is the newest page. Still in seq order.
   */
  before?: bigint | 'end';
  /** Most results returned. Default 100. */
  limit?: number;
}

export interface CallOptions {
  /** Overrides the client's timeoutMs for this call. */
  timeoutMs?: number;
}

type CamelCase<S extends string> = S extends `${infer Head}_${infer Tail}`
  ? `${Head}${Capitalize<CamelCase<Tail>>}`
  : S;
const camelCase = (type: string) => type.replace(/_(.)/g, (_, letter: string) => letter.toUpperCase());

/** One method per command type, in camelCase (`openAccount` for open_account): `submit` with its type. */
type CommandMethods = {
  [T in CommandType as CamelCase<T>]: (input: CommandInputs[T], options?: CallOptions) => Promise<CommandResult>;
};

export interface BillingClient extends CommandMethods {
  /** Enqueues a command through billing.submit and resolves with its result (applied or rejected). */
  submit<T extends CommandType>(type: T, input: CommandInputs[T], options?: CallOptions): Promise<CommandResult>;
  /** Every result in seq order, from `after` on, waiting for new ones; survives reconnects without loss. */
  results(options?: ResultsOptions): AsyncGenerator<StoredResult, void, undefined>;
  /** The stored result of a command id, if it has one. */
  result(id: string): Promise<StoredResult | undefined>;
  /** The highest seq written so far (0n when none): `results({ after: await lastSeq() })` tails new ones from here. */
  lastSeq(): Promise<bigint>;
  balance(account: string): Promise<Account | undefined>;
  /**
   * An account's balance, held and available as the results in seq order left them at a point
   * (billing.balance_at): after every result up to a seq (`12n`), or after every result sequenced
   * by a time (a Date, or an ISO 8601 text with a zone, which keeps microseconds). undefined when
   * the account was not open then. A bad point is a TypeError or RangeError. docs/dba.md says what
   * a time means when transactions commit out of order.
   */
  balanceAt(account: string, at: BalancePoint): Promise<BalanceAt | undefined>;
  /**
   * One page of an account's history: the results (applied or rejected) of the commands that named
   * it or one of its holds, in seq order (billing.account_history). Next page: `after` = the last seq;
   * the newest page: `before: 'end'`, the page before it: `before` = its first seq.
   */
  history(account: string, options?: HistoryOptions): Promise<StoredResult[]>;
  /** The accounts that exist, by id. */
  balances(accounts: string[]): Promise<Map<string, Account>>;
  /** Commands waiting for their result right now. */
  readonly pendingCount: number;
  /** Stops listening, rejects pending calls with ClientClosedError, ends iterators, closes connections. */
  close(): Promise<void>;
}

const defaultTimeoutMs = 30_000;
const maxRetryMs = 5_000;

export function createBillingClient(options: BillingClientOptions): BillingClient {
  // pg would take a missing one for "connect by PG* variables" and fail later with a message about
  // a user name in a startup packet.
  if (typeof options?.connectionString !== 'string' || options.connectionString === '')
    throw new TypeError(
      `createBillingClient: connectionString is required (the billing database, e.g. process.env.DATABASE_URL), got ${
        options?.connectionString === '' ? 'an empty string' : String(options?.connectionString)
      }`,
    );
  const applicationName = options.applicationName ?? 'pg-billing-client';
  // Enqueue and LISTEN need the primary (notifications are not replicated).
  const connectionString = writableUrl(options.connectionString);
  const pool: pg.Pool = createPool({
    connectionString,
    max: options.poolSize ?? 4,
    applicationName,
  });
  const listener = new ResultListener({
    connectionString,
    channel: resultsChannel,
    applicationName: `${applicationName}-listener`,
    ...(options.onListenerError ? { onError: options.onListenerError } : {}),
  });
  const pending = new PendingResults(pool, listener);
  let closed = false;

  async function submit<T extends CommandType>(
    type: T,
    input: CommandInputs[T],
    call: CallOptions = {},
  ): Promise<CommandResult> {
    if (closed) throw new ClientClosedError();
    if (!commandTypes.includes(type)) throw new TypeError(`unknown command type: ${String(type)}`);
    const id = input.id ?? randomUUID();
    const payload = toPayload(type, id, input);
    const text = JSON.stringify(payload);
    // The same parser the worker runs gives the same fingerprint, and the id it would file the result under.
    const parsed = parseCommand({ task: type, payload: JSON.parse(text), defaultId: '', defaultCurrency: 'XXX' });
    const filedUnder = parsed.ok ? parsed.command.id : parsed.id;
    if (filedUnder !== id)
      throw new TypeError(`id must be 1 to 128 characters of well-formed text, got ${JSON.stringify(id)}`);
    // Registered before the enqueue, so a result that commits at once is not missed.
    const waiting = pending.add(id, type, parsed.fingerprint);
    listener.start();
    let jobId: bigint;
    try {
      const { rows } = await pool.query<{ job_id: bigint }>('select billing.submit($1, $2::json) as job_id', [
        type,
        text,
      ]);
      jobId = rows[0]!.job_id;
    } catch (error) {
      waiting.abandon();
      throw error;
    }
    waiting.enqueued(jobId, call.timeoutMs ?? options.timeoutMs ?? defaultTimeoutMs);
    return waiting.promise;
  }

  /** Checked when called, not at the first `next()`: a batch size of 0 would read nothing, forever. */
  function results(resultsOptions: ResultsOptions = {}): AsyncGenerator<StoredResult, void, undefined> {
    const batchSize = resultsOptions.batchSize ?? 500;
    if (!Number.isSafeInteger(batchSize) || batchSize < 1)
      throw new RangeError(`results: batchSize must be a whole number of at least 1, got ${String(batchSize)}`);
    return readResults(resultsOptions, batchSize);
  }

  async function* readResults(
    resultsOptions: ResultsOptions,
    batchSize: number,
  ): AsyncGenerator<StoredResult, void, undefined> {
    if (closed) throw new ClientClosedError();
    let cursor = resultsOptions.after === 'now' ? await lastSeq() : (resultsOptions.after ?? 0n);
    const signal = resultsOptions.signal;
    // Subscribed before the first read: a notification between a read and the wait is kept.
    const wakeup = listener.subscribe();
    const onAbort = () => wakeup.signal();
    signal?.addEventListener('abort', onAbort);
    let retryMs = 100;
    let lastReadAt: number;
    try {
      while (!closed && !signal?.aborted) {
        let rows: ResultRow[];
        lastReadAt = performance.now();
        try {
          ({ rows } = await pool.query<ResultRow>(
            `select ${resultColumns} from billing.operations where seq > $1 order by seq limit $2`,
            [cursor, batchSize],
          ));
          retryMs = 100;
        } catch (error) {
          if (closed || signal?.aborted) return;
          if (!isTransientError(error)) throw error;
          await wakeup.wait(retryMs); // the listener's reconnect wakes this as soon as the server is back
          retryMs = Math.min(retryMs * 2, maxRetryMs);
          continue;
        }
        for (const row of rows) {
          cursor = row.seq;
          yield toStoredResult(row);
          if (closed || signal?.aborted) return;
        }
        if (rows.length < batchSize) {
          await wakeup.wait(fallbackCheckMs);
          await spaceAfter(lastReadAt); // a flood of notifications: one read per spacing at most
        }
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      wakeup.dispose();
    }
  }

  // seq is taken under a lock held to commit (billing.result_seq_lock), so no result below the
  // highest one can still commit: max(seq) is a cursor that skips nothing.
  async function lastSeq(): Promise<bigint> {
    const { rows } = await pool.query<{ seq: bigint }>(
      'select coalesce(max(seq), 0)::int8 as seq from billing.operations',
    );
    return rows[0]!.seq;
  }

  async function balances(accounts: string[]): Promise<Map<string, Account>> {
    const { rows } = await pool.query<AccountRow>(
      `select ${accountColumns} from billing.accounts where account = any($1::text[])`,
      [accounts],
    );
    return new Map(rows.map((row) => [row.account, toAccount(row)]));
  }

  const command =
    <T extends CommandType>(type: T) =>
    (input: CommandInputs[T], call?: CallOptions) =>
      submit(type, input, call);

  const methods = Object.fromEntries(commandTypes.map((type) => [camelCase(type), command(type)])) as CommandMethods;

  return {
    ...methods,
    submit,
    results,
    async result(id) {
      const { rows } = await pool.query<ResultRow>(`select ${resultColumns} from billing.operations where id = $1`, [
        id,
      ]);
      return rows[0] ? toStoredResult(rows[0]) : undefined;
    },
    lastSeq,
    async balance(account) {
      return (await balances([account])).get(account);
    },
    balances,
    async balanceAt(account, at) {
      if (closed) throw new ClientClosedError();
      return balanceAt(pool, account, at);
    },
    async history(account, { after, before, limit = 100 } = {}) {
      if (after !== undefined && before !== undefined) throw new TypeError('history: after or before, not both');
      const { rows } =
        before === undefined
          ? await pool.query<ResultRow>(`select ${resultColumns} from billing.account_history($1, $2, $3)`, [
              account,
              after ?? 0n,
              limit,
            ])
          : await pool.query<ResultRow>(`select ${resultColumns} from billing.account_history_before($1, $2, $3)`, [
              account,
              before === 'end' ? null : before,
              limit,
            ]);
      return rows.map(toStoredResult);
    },
    get pendingCount() {
      return pending.size;
    },
    async close() {
      if (closed) return;
      closed = true;
      pending.closeAll();
      await listener.close();
      await pool.end();
    },
  };
}
