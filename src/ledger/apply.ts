import { createHash } from 'node:crypto';
import {
  type Compilable,
  type CompiledQuery,
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
} from 'kysely';
import type pg from 'pg';
import { balancesFromJson } from '../commands/balances-json.ts';
import { locksOf, operationTypes } from '../commands/command.ts';
import {
  accountStatuses,
  holdStatuses,
  resultCodes,
  resultStatuses,
  type StoredResultCode,
} from '../commands/contract.ts';
import type { AccountState, LedgerView, OperationState, ReversalTotal } from '../commands/decision.ts';
import type { DB } from '../db/schema.ts';
import {
  lockAccounts,
  lockHolds,
  lockSlots,
  selectEarlierResults,
  selectOperationEntries,
  selectOperations,
  selectReversalTotals,
  BatchParameter,
  writeStatement,
  writeValues,
} from './batch-sql.ts';
import { lockSlotsOf } from './lock-slots.ts';
import { type BatchItem, type BatchPlan, type EarlierResults, type ItemOutcome, planBatch } from './plan.ts';

export { resultsChannel } from '../commands/contract.ts';

/**
 * NOTIFY-queue usage (0-1) from which a batch sends no notification (BILLING_NOTIFY_QUEUE_LIMIT_PERCENT):
 * far below full, so that notifications sent between the check and the commit still fit.
 */
export const defaultNotifyQueueLimit = 0.5;

/** A recorded outcome carries the seq its result row got; the others wrote no row. */
export type AppliedOutcome =
  (Extract<ItemOutcome, { kind: 'recorded' }> & { seq: bigint }) | Exclude<ItemOutcome, { kind: 'recorded' }>;

export interface AppliedBatch {
  outcomes: AppliedOutcome[];
  highestSeq: bigint | null;
}

/**
 * Builds and compiles the batch's queries; they run on one pg connection of the caller's pool, so
 * that several can be on the wire at once (Kysely's own executor sends one, then waits).
 */
const builder = new Kysely<DB>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

/**
 * Sends one compiled query as a named prepared statement: the batch's statements have a fixed text
 * (lists travel as array parameters), so each connection parses and plans each of them once, not
 * once a batch. Its rows are the query's own row type (int8 arrives as bigint: src/db/pool.ts).
 */
function sendQuery<O extends pg.QueryResultRow>(
  client: pg.PoolClient,
  query: Compilable<O> | CompiledQuery<O>,
): Promise<O[]> {
  const compiled = 'compile' in query ? query.compile() : query;
  const name = statementName(compiled.sql);
  return client.query<O>({ name, text: compiled.sql, values: [...compiled.parameters] }).then((result) => result.rows);
}

/** The writes statement, compiled once; a batch's values fill its named parameters. */
const compiledWrites = writeStatement(builder).compile();

function writesOf(plan: BatchPlan, notify: boolean): typeof compiledWrites {
  const values = writeValues(plan, notify);
  return {
    ...compiledWrites,
    parameters: compiledWrites.parameters.map((p) => (p instanceof BatchParameter ? p.valueIn(values) : p)),
  };
}

const statementNames = new Map<string, string>();

function statementName(text: string): string {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `billing_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
    statementNames.set(text, name);
  }
  return name;
}

/**
 * Sends statements on one client: at once on a pipelining client, else each after the previous one
 * answered (pg deprecates queueing on a busy client). Callers wait for every answer (allSettled),
 * so none is left unhandled; a statement after a failed one fails too (the transaction is
 * aborted), so the first failure in order is the one to throw (Promise.all).
 */
function statementSender(client: pg.PoolClient): <T>(statement: () => Promise<T>) => Promise<T> {
  let previous: Promise<unknown> = Promise.resolve();
  return (statement) => {
    const answer = client.pipeline ? statement() : previous.then(statement, statement);
    previous = answer.catch(() => {});
    return answer;
  };
}

/**
 * Applies a batch of commands in one transaction: lock, decide in arrival order, write entries,
 * holds, results and one notification, commit. Any error rolls all of it back and is thrown: the
 * caller fails every job of the batch and graphile-worker retries them; ids make the retry safe.
 *
 * Lock order, the same for every transaction, so that none can deadlock with another: lock slots
 * of every command id, account and hold the batch names (one statement, ascending) -> holds (by
 * id) -> accounts (by id, the accounts of the holds included) -> the result seq row. All are row
 * locks on tables only the worker role may lock (sql/0007_lock_rows.sql), held to commit.
 *
 * Why this makes `seq` order a serial order: two batches that touch a common account, hold or id
 * share its slot (or its row), so the later one waits until the earlier one commits; it reads in a
 * statement whose snapshot comes after that wait (READ COMMITTED: each statement its own), so it
 * sees the earlier one's rows; and it takes the seq lock only after all that, so its seq is higher.
 *
 * Two round trips on a pipelining pool (src/db/pool.ts `pipeline`), each a run of statements sent
 * together, every value a bound parameter: begin, the slot locks and the reads; then the writes
 * (one statement, ending with the seq lock and the result rows) and commit. The seq lock is held
 * from the server's work on the writes to its commit, with no client round trip in between. On a
 * pool that does not pipeline, pg sends each queued statement as the previous one completes.
 */
export async function applyBatch(
  pool: pg.Pool,
  items: BatchItem[],
  options: { notifyQueueLimit?: number } = {},
): Promise<AppliedBatch> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const send = statementSender(client);
  try {
    const named = namedOperations(items);
    // The accounts of the commands that reversals name: read before locking, from rows that never
    // change once written. A command that gets its result between this read and the locks is
    // seen under the locks (its id's slot is locked): then the batch starts over, knowing it.
    let known = named.length ? await readOperations(client, send, named) : new Map<string, OperationState>();
    let read: Awaited<ReturnType<typeof lockAndRead>>;
    for (let attempt = 1; ; attempt++) {
      read = await lockAndRead(client, send, items, known, options.notifyQueueLimit ?? defaultNotifyQueueLimit);
      const unlocked = [...(read.view.operations?.values() ?? [])].filter((operation) =>
        operation.moves.some((move) => !read.view.accounts.has(move.account) && !read.lockedAccounts.has(move.account)),
      );
      if (unlocked.length === 0) break;
      await send(() => client.query('rollback'));
      if (attempt === 3) throw new Error(`the accounts of ${unlocked[0]!.id} were not locked after ${attempt} tries`);
      known = read.view.operations ?? new Map();
    }
    const { existing, view, notify } = read;
    const plan = planBatch(items, existing, view);
    const writes = [send(() => sendQuery(client, writesOf(plan, notify))), send(() => client.query('commit'))] as const;
    await Promise.allSettled(writes);
    const [rows, committed] = await Promise.all(writes);
    if (committed.command !== 'COMMIT') throw new Error('the batch transaction did not commit');
    // Checked after the commit (checking before would cost a round trip under the seq lock): a
    // failure here is a fault to look at, not a state to roll back.
    const seqs = new Map<string, bigint>();
    for (const row of rows) if (row.id !== null && row.seq !== null) seqs.set(row.id, row.seq);
    if (seqs.size !== plan.operations.length)
      throw new Error(`wrote ${seqs.size} of ${plan.operations.length} results`);
    const expiriesDue = notify ? plan.expiries.length : 0;
    if (Number(rows[0]?.expiries) !== expiriesDue)
      throw new Error(`scheduled ${rows[0]?.expiries} of ${expiriesDue} expiries`);
    const outcomes = plan.outcomes.map((outcome): AppliedOutcome => {
      if (outcome.kind !== 'recorded') return outcome;
      const seq = seqs.get(outcome.result.id);
      if (seq === undefined) throw new Error(`no seq came back for result ${outcome.result.id}`);
      return { ...outcome, seq };
    });
    const highestSeq = seqs.size ? [...seqs.values()].reduce((a, b) => (a > b ? a : b)) : null;
    return { outcomes, highestSeq };
  } catch (error) {
    // The transaction may be open (a failed statement aborts it) or already ended by a failed commit;
    // rollback covers both. A connection that cannot even roll back is not given back to the pool.
    await client.query('rollback').catch((rollbackError: Error) => {
      broken = rollbackError;
    });
    throw error;
  } finally {
    client.release(broken);
  }
}

/** The earlier commands that the batch's reversals name. */
function namedOperations(items: BatchItem[]): string[] {
  const named = new Set<string>();
  for (const { parsed } of items) {
    const operation = parsed.ok ? locksOf(parsed.command).operation : undefined;
    if (operation !== undefined) named.add(operation);
  }
  return [...named];
}

/** Result rows and journals of these commands, as far as they exist. */
async function readOperations(
  client: pg.PoolClient,
  send: ReturnType<typeof statementSender>,
  ids: readonly string[],
): Promise<Map<string, OperationState>> {
  const reads = [
    send(() => sendQuery(client, selectOperations(builder, ids))),
    send(() => sendQuery(client, selectOperationEntries(builder, ids))),
  ] as const;
  await Promise.allSettled(reads);
  const [operations, entries] = await Promise.all(reads);
  return operationStates(operations, entries);
}

function operationStates(
  operations: { id: string; type: string; status: string }[],
  entries: { operation_id: string; account: string; balance_delta: bigint }[],
): Map<string, OperationState> {
  const states = new Map<string, OperationState>(
    operations.map((row) => [
      row.id,
      { id: row.id, type: row.type, status: oneOf(resultStatuses, row.status, 'result status'), moves: [] },
    ]),
  );
  for (const entry of entries)
    states.get(entry.operation_id)?.moves.push({ account: entry.account, balanceDelta: entry.balance_delta });
  return states;
}

/** Takes the batch's slot locks, then reads (and row-locks) what its commands decide on. */
async function lockAndRead(
  client: pg.PoolClient,
  send: ReturnType<typeof statementSender>,
  items: BatchItem[],
  known: Map<string, OperationState>,
  notifyQueueLimit: number,
) {
  const holdIds = new Set<string>();
  const accountIds = new Set<string>();
  const operationIds = new Set<string>();
  /** The accounts of the commands that reversals name (a reversal's payload names none). */
  const reversedAccounts: string[] = [];
  for (const { parsed } of items) {
    if (!parsed.ok) continue;
    const { accounts, hold, operation } = locksOf(parsed.command);
    if (hold !== undefined) holdIds.add(hold);
    for (const account of accounts) accountIds.add(account);
    if (operation !== undefined) {
      operationIds.add(operation);
      for (const move of known.get(operation)?.moves ?? []) {
        accountIds.add(move.account);
        reversedAccounts.push(move.account);
      }
    }
  }
  const slots = lockSlotsOf(items, reversedAccounts);
  const operationList = [...operationIds];
  const reads = [
    send(() => client.query('begin')),
    // Each statement is prepared once per connection, and its generic plan is used from the first
    // run: planning the writes statement afresh (its first five runs, and after every ANALYZE)
    // costs more than running it. A generic plan made while a table is small must not be a
    // sequential scan kept as the table grows: every access here is by key, so sequential scans
    // are ruled out. The cost that rules them out would also start JIT on every batch: off.
    // (Figures: docs/performance.md.)
    // The NOTIFY queue's usage decides whether this batch notifies (writeStatement); reading it
    // also advances the queue's tail past what every listener has read.
    send(() =>
      client.query<{ notify: boolean }>(
        `select set_config('enable_seqscan', 'off', true), set_config('jit', 'off', true),
                set_config('plan_cache_mode', 'force_generic_plan', true),
                pg_notification_queue_usage() < $1::float8 as notify`,
        [notifyQueueLimit],
      ),
    ),
    send(() => sendQuery(client, lockSlots(builder, slots))),
    send(() => sendQuery(client, selectEarlierResults(builder, items.map(idOf)))),
    send(() => sendQuery(client, lockHolds(builder, [...holdIds]))),
    send(() => sendQuery(client, lockAccounts(builder, [...accountIds], [...holdIds]))),
  ] as const;
  // Only a batch with a reversal reads the commands they name, under the locks of their ids.
  const reversalReads = operationList.length
    ? ([
        send(() => sendQuery(client, selectOperations(builder, operationList))),
        send(() => sendQuery(client, selectOperationEntries(builder, operationList))),
        send(() => sendQuery(client, selectReversalTotals(builder, operationList))),
      ] as const)
    : undefined;
  await Promise.allSettled([...reads, ...(reversalReads ?? [])]);
  const [, settings, locked, earlier, holdRows, accountRows] = await Promise.all(reads);
  let reversalView: { operations: Map<string, OperationState>; reversals: Map<string, ReversalTotal> } | undefined;
  if (reversalReads) {
    const [operationRows, entryRows, totals] = await Promise.all(reversalReads);
    reversalView = {
      operations: operationStates(operationRows, entryRows),
      reversals: new Map(totals.map((row) => [row.operation_id, { total: row.total, reversed: row.reversed }])),
    };
  }
  const notify = settings.rows[0]?.notify === true;
  // A missing slot row would be a lock silently not taken.
  const { locked: lockedCount, now } = locked[0]!;
  if (lockedCount !== BigInt(slots.length)) throw new Error(`locked ${lockedCount} of ${slots.length} lock slots`);

  const existing: EarlierResults = new Map(
    earlier.map((row) => [
      row.id,
      {
        result: {
          id: row.id,
          seq: row.seq,
          type: oneOf(operationTypes, row.type, 'operation type'),
          status: oneOf(resultStatuses, row.status, 'result status'),
          code: oneOf(storedResultCodes, row.code, 'result code'),
          message: row.message,
          balances: balancesFromJson(row.balances),
          job_id: row.job_id,
          created_at: row.created_at,
        },
        fingerprint: row.fingerprint,
      },
    ]),
  );
  const holds = new Map(
    holdRows.map((row) => [
      row.hold,
      {
        hold: row.hold,
        account: row.account,
        amount: row.amount,
        status: oneOf(holdStatuses, row.status, 'hold status'),
        expiresAt: row.expires_at,
      },
    ]),
  );
  const accounts = new Map(
    accountRows.map((row) => [
      row.account,
      {
        account: row.account,
        currency: row.currency,
        balance: row.balance,
        held: row.held,
        overdraftLimit: row.overdraft_limit,
        maxBalance: row.max_balance,
        status: oneOf(accountStatuses, row.status, 'account status'),
      } satisfies AccountState,
    ]),
  );
  // `now`: the clock after the last slot lock was granted, the database's, never the worker's.
  const view: LedgerView = { accounts, holds, now, ...reversalView };
  return { existing, view, notify, lockedAccounts: accountIds };
}

/** The codes a row of billing.operations can hold (its CHECK code_known): a reused id writes no row. */
const storedResultCodes = resultCodes.filter((code): code is StoredResultCode => code !== 'id_conflict');

function idOf(item: BatchItem): string {
  return item.parsed.ok ? item.parsed.command.id : item.parsed.id;
}

/** A text column's value as one of a closed list, or a fault (the database's CHECKs keep it so). */
function oneOf<T extends string>(list: readonly T[], value: string, what: string): T {
  const found = list.find((item) => item === value);
  if (found === undefined) throw new Error(`unknown ${what} ${JSON.stringify(value)} in the database`);
  return found;
}
