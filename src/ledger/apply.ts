import type { Kysely } from 'kysely';
import type pg from 'pg';
import { balancesFromJson } from '../commands/balances-json.ts';
import { commandTypes, holdStatuses, resultCodes, resultStatuses } from '../commands/codes.ts';
import { createKysely } from '../db/kysely.ts';
import type { DB } from '../db/schema.ts';
import { lockAccounts, lockHolds, lockSlots, selectEarlierResults, writeBatch } from './batch-sql.ts';
import { accountsNamedBy, holdNamedBy, lockSlotsOf } from './lock-slots.ts';
import { type BatchItem, type ItemOutcome, planBatch, type StoredResult } from './plan.ts';
import type { LedgerView } from './state.ts';

export { resultsChannel } from './batch-sql.ts';

export interface AppliedBatch {
  outcomes: (ItemOutcome & { seq?: bigint })[];
  highestSeq: bigint | null;
}

const operationTypes = [...commandTypes, 'expire'] as const;

const kyselyOfPool = new WeakMap<pg.Pool, Kysely<DB>>();

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
 * Round trips: begin, slots, earlier results, holds (if any), accounts, the writes (one statement),
 * commit. The seq lock is held from inside the writes statement to the commit.
 */
export async function applyBatch(pool: pg.Pool, items: BatchItem[]): Promise<AppliedBatch> {
  let db = kyselyOfPool.get(pool);
  if (!db) kyselyOfPool.set(pool, db = createKysely(pool));
  return db.transaction().execute(async (trx) => {
    const { existing, view } = await readLocked(trx, items);
    const plan = planBatch(items, existing, view);
    const rows = await writeBatch(trx, plan).execute();
    const written = rows[0];
    if (written === undefined) throw new Error('the batch statement returned no row');
    if (Number(written.expiries) !== plan.expiries.length) throw new Error(`scheduled ${written.expiries} of ${plan.expiries.length} expiries`);
    const seqs = new Map<string, bigint>();
    for (const row of rows) if (row.id !== null && row.seq !== null) seqs.set(row.id, row.seq);
    if (seqs.size !== plan.operations.length) throw new Error(`wrote ${seqs.size} of ${plan.operations.length} results`);
    const outcomes = plan.outcomes.map((outcome) =>
      outcome.kind === 'recorded' ? { ...outcome, seq: seqs.get(outcome.result.id) } : outcome);
    const highestSeq = seqs.size ? [...seqs.values()].reduce((a, b) => (a > b ? a : b)) : null;
    return { outcomes, highestSeq };
  });
}

interface LockedReads {
  existing: Map<string, StoredResult>;
  view: LedgerView;
}

async function readLocked(db: Kysely<DB>, items: BatchItem[]): Promise<LockedReads> {
  const slots = lockSlotsOf(items);
  const locked = await lockSlots(db, slots).execute();
  // A missing slot row would be a lock silently not taken.
  if (locked.length !== slots.length) throw new Error(`locked ${locked.length} of ${slots.length} lock slots`);
  const now = locked[locked.length - 1]!.now;

  const earlier = await selectEarlierResults(db, items.map(idOf)).execute();
  const existing = new Map(earlier.map((row) => [row.id, {
    id: row.id,
    seq: row.seq,
    type: oneOf(operationTypes, row.type, 'operation type'),
    status: oneOf(resultStatuses, row.status, 'result status'),
    code: oneOf(resultCodes, row.code, 'result code'),
    message: row.message,
    balances: balancesFromJson(row.balances),
    fingerprint: row.fingerprint,
    jobId: row.job_id,
  } satisfies StoredResult]));

  const holdIds = new Set<string>();
  const accountIds = new Set<string>();
  for (const { parsed } of items) {
    if (!parsed.ok) continue;
    const hold = holdNamedBy(parsed.command);
    if (hold !== undefined) holdIds.add(hold);
    for (const account of accountsNamedBy(parsed.command)) accountIds.add(account);
  }
  const holdRows = holdIds.size ? await lockHolds(db, [...holdIds]).execute() : [];
  const holds = new Map(holdRows.map((row) => [row.hold, {
    hold: row.hold,
    account: row.account,
    amount: row.amount,
    status: oneOf(holdStatuses, row.status, 'hold status'),
    expiresAt: row.expires_at,
  }]));
  // A hold's account is locked with the rest: a hold's account never changes.
  for (const hold of holdRows) accountIds.add(hold.account);
  const accountRows = accountIds.size ? await lockAccounts(db, [...accountIds]).execute() : [];
  const accounts = new Map(accountRows.map((row) => [row.account, { ...row }]));
  return { existing, view: { accounts, holds, now } };
}

function idOf(item: BatchItem): string {
  return item.parsed.ok ? item.parsed.command.id : item.parsed.id;
}

/** A text column's value as one of a closed list, or a fault (the database's CHECKs keep it so). */
function oneOf<T extends string>(list: readonly T[], value: string, what: string): T {
  const found = list.find((item) => item === value);
  if (found === undefined) throw new Error(`unknown ${what} ${JSON.stringify(value)} in the database`);
  return found;
}
