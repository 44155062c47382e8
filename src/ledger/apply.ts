import { sql, type Transaction } from 'kysely';
import { expireTaskName, type OperationType, type ResultCode, type ResultStatus } from '../commands/codes.ts';
import type { DB } from '../db/schema.ts';
import type { BillingDb } from '../db/kysely.ts';
import { type AccountBalance, type BatchItem, type BatchPlan, type ItemOutcome, planBatch, type StoredResult } from './plan.ts';
import type { AccountState, HoldState, LedgerView } from './state.ts';

/** Advisory lock classes (first int of the two-int form) that belong to pg-billing. */
export const lockClass = {
  /** One key per command id or new hold id: a second worker with the same id waits, then sees the first. */
  key: 0x62696c6c, // 'bill'
  /** The single lock under which result seqs are handed out, so that seq order is commit order. */
  seq: 0x62696c73, // 'bils'
} as const;

export const resultsChannel = 'billing_results';

export interface AppliedBatch {
  outcomes: (ItemOutcome & { seq?: bigint })[];
  highestSeq: bigint | null;
}

/**
 * Applies a batch of commands in one transaction: lock, decide in arrival order, write entries,
 * holds, results and one notification, commit. Any error rolls all of it back and is thrown: the
 * caller fails every job of the batch and graphile-worker retries them; ids make the retry safe.
 *
 * Lock order, the same for every transaction, so that none can deadlock with another:
 * command and new-hold keys (advisory, by hash) -> holds (by id) -> accounts (by id) -> seq lock.
 */
export async function applyBatch(db: BillingDb, items: BatchItem[]): Promise<AppliedBatch> {
  return db.transaction().execute(async (trx) => {
    await lockKeys(trx, keysOf(items));
    const existing = await loadResults(trx, items.map(idOf));
    const holds = await lockHolds(trx, holdIdsOf(items));
    const accounts = await lockAccounts(trx, accountIdsOf(items, holds));
    const now = await databaseNow(trx);
    const view: LedgerView = { accounts, holds, now };
    const plan = planBatch(items, existing, view);
    await writeLedger(trx, plan);
    const seqs = await writeResults(trx, plan);
    await notify(trx, plan, seqs);
    const outcomes = plan.outcomes.map((outcome) =>
      outcome.kind === 'recorded' ? { ...outcome, seq: seqs.get(outcome.result.id) } : outcome);
    const highestSeq = seqs.size ? [...seqs.values()].reduce((a, b) => (a > b ? a : b)) : null;
    return { outcomes, highestSeq };
  });
}

type Trx = Transaction<DB>;

function idOf(item: BatchItem): string {
  return item.parsed.ok ? item.parsed.command.id : item.parsed.id;
}

function keysOf(items: BatchItem[]): string[] {
  const keys = new Set<string>();
  for (const item of items) {
    keys.add(`id:${idOf(item)}`);
    if (item.parsed.ok && item.parsed.command.type === 'hold') keys.add(`hold:${item.parsed.command.hold}`);
  }
  return [...keys];
}

function holdIdsOf(items: BatchItem[]): string[] {
  const ids = new Set<string>();
  for (const { parsed } of items) {
    if (!parsed.ok) continue;
    const command = parsed.command;
    if (command.type === 'hold' || command.type === 'capture' || command.type === 'release' || command.type === 'expire') {
      ids.add(command.hold);
    }
  }
  return [...ids];
}

function accountIdsOf(items: BatchItem[], holds: Map<string, HoldState>): string[] {
  const ids = new Set<string>();
  for (const hold of holds.values()) ids.add(hold.account);
  for (const { parsed } of items) {
    if (!parsed.ok) continue;
    const command = parsed.command;
    if ('account' in command) ids.add(command.account);
    if (command.type === 'transfer') { ids.add(command.from); ids.add(command.to); }
    if (command.type === 'capture' && command.to !== undefined) ids.add(command.to);
  }
  return [...ids];
}

/** Hashes sorted, duplicates folded: two batches sharing keys take them in the same order. */
async function lockKeys(trx: Trx, keys: string[]): Promise<void> {
  await sql`select pg_advisory_xact_lock(${lockClass.key}::int4, h)
            from (select distinct hashtext(k) as h from unnest(${keys}::text[]) as k order by 1) as sorted`
    .execute(trx);
}

async function loadResults(trx: Trx, ids: string[]): Promise<Map<string, StoredResult>> {
  const rows = await trx.selectFrom('billing.operations')
    .select(['id', 'seq', 'type', 'status', 'code', 'message', 'balances', 'fingerprint', 'job_id'])
    .where('id', '=', sql<string>`any(${ids}::text[])`)
    .execute();
  return new Map(rows.map((row) => [row.id, {
    id: row.id,
    seq: row.seq,
    type: row.type as OperationType,
    status: row.status as ResultStatus,
    code: row.code as ResultCode,
    message: row.message,
    balances: balancesFromJson(row.balances),
    fingerprint: row.fingerprint,
    jobId: row.job_id,
  }]));
}

async function lockHolds(trx: Trx, ids: string[]): Promise<Map<string, HoldState>> {
  if (!ids.length) return new Map();
  const rows = await trx.selectFrom('billing.holds')
    .select(['hold', 'account', 'amount', 'status', 'expires_at'])
    .where('hold', '=', sql<string>`any(${ids}::text[])`)
    .orderBy('hold')
    .forUpdate()
    .execute();
  return new Map(rows.map((row) => [row.hold, {
    hold: row.hold,
    account: row.account,
    amount: row.amount,
    status: row.status as HoldState['status'],
    expiresAt: row.expires_at,
  }]));
}

async function lockAccounts(trx: Trx, ids: string[]): Promise<Map<string, AccountState>> {
  if (!ids.length) return new Map();
  const rows = await trx.selectFrom('billing.accounts')
    .select(['account', 'currency', 'balance', 'held'])
    .where('account', '=', sql<string>`any(${ids}::text[])`)
    .orderBy('account')
    .forUpdate()
    .execute();
  return new Map(rows.map((row) => [row.account, { ...row }]));
}

async function databaseNow(trx: Trx): Promise<Date> {
  const { rows } = await sql<{ now: Date }>`select clock_timestamp() as now`.execute(trx);
  return rows[0]!.now;
}

async function writeLedger(trx: Trx, plan: BatchPlan): Promise<void> {
  if (plan.openedAccounts.length) {
    await trx.insertInto('billing.accounts').values(plan.openedAccounts).execute();
  }
  if (plan.changedAccounts.size) {
    const changed = [...plan.changedAccounts.values()];
    await sql`update billing.accounts as a
              set balance = v.balance, held = v.held, updated_at = now()
              from unnest(${changed.map((c) => c.account)}::text[],
                          ${changed.map((c) => String(c.balance))}::int8[],
                          ${changed.map((c) => String(c.held))}::int8[]) as v(account, balance, held)
              where a.account = v.account`.execute(trx);
  }
  if (plan.createdHolds.length) {
    await trx.insertInto('billing.holds').values(plan.createdHolds.map((hold) => ({
      hold: hold.hold,
      account: hold.account,
      amount: hold.amount,
      expires_at: hold.expiresAt,
      operation_id: hold.operationId,
    }))).execute();
  }
  for (const closed of plan.closedHolds) {
    await trx.updateTable('billing.holds')
      .set({ status: closed.status, captured: closed.captured, captured_to: closed.capturedTo, closed_by: closed.operationId, closed_at: sql`now()` })
      .where('hold', '=', closed.hold)
      .execute();
  }
  if (plan.entries.length) {
    const e = plan.entries;
    await sql`insert into billing.entries (operation_id, account, balance_delta, held_delta, balance_after, held_after)
              select operation_id, account, balance_delta, held_delta, balance_after, held_after from unnest(${e.map((x) => x.operationId)}::text[], ${e.map((x) => x.account)}::text[],
                                   ${e.map((x) => String(x.balanceDelta))}::int8[], ${e.map((x) => String(x.heldDelta))}::int8[],
                                   ${e.map((x) => String(x.balanceAfter))}::int8[], ${e.map((x) => String(x.heldAfter))}::int8[])
                   with ordinality as u(operation_id, account, balance_delta, held_delta, balance_after, held_after, n)
              order by n`.execute(trx);
  }
  for (const expiry of plan.expiries) {
    // run_at is judged by the database clock; job_key keeps one expiry job per hold.
    await sql`select graphile_worker.add_job(${expireTaskName}, json_build_object('hold', ${expiry.hold}::text),
                run_at => ${expiry.runAt}::timestamptz, job_key => ${`expire:${expiry.hold}`}::text, max_attempts => 25)`
      .execute(trx);
  }
  if (plan.conflicts.length) {
    await trx.insertInto('billing.id_conflicts').values(plan.conflicts.map((c) => ({
      id: c.id, type: c.type, request: JSON.stringify(c.request), job_id: c.jobId,
    }))).execute();
  }
}

/** Result rows go last, under the seq lock, which is held to commit: seq order is commit order. */
async function writeResults(trx: Trx, plan: BatchPlan): Promise<Map<string, bigint>> {
  if (!plan.operations.length) return new Map();
  await sql`select pg_advisory_xact_lock(${lockClass.seq}::int4, 0)`.execute(trx);
  const rows = await trx.insertInto('billing.operations')
    .values(plan.operations.map((op) => ({
      id: op.id,
      type: op.type,
      status: op.status,
      code: op.code,
      message: op.message,
      request: JSON.stringify(op.request),
      fingerprint: op.fingerprint,
      job_id: op.jobId,
      balances: JSON.stringify(balancesToJson(op.balances)),
    })))
    .returning(['id', 'seq'])
    .execute();
  return new Map(rows.map((row) => [row.id, row.seq]));
}

/**
 * One notification per transaction with the highest seq written (a wake-up, not the data: readers
 * read by cursor), plus one per id conflict, which writes no result row. Every payload is small.
 */
async function notify(trx: Trx, plan: BatchPlan, seqs: Map<string, bigint>): Promise<void> {
  const payloads: string[] = [];
  if (seqs.size) {
    const highest = [...seqs.values()].reduce((a, b) => (a > b ? a : b));
    payloads.push(JSON.stringify({ seq: String(highest), count: seqs.size }));
  }
  for (const conflict of plan.conflicts) {
    payloads.push(JSON.stringify({ id: conflict.id, type: conflict.type, status: 'rejected', code: 'id_conflict', job_id: conflict.jobId === null ? null : String(conflict.jobId) }));
  }
  if (!payloads.length) return;
  await sql`select pg_notify(${resultsChannel}, p) from unnest(${payloads}::text[]) as p`.execute(trx);
}

export function balancesToJson(balances: AccountBalance[]): { account: string; balance: string; held: string }[] {
  return balances.map((b) => ({ account: b.account, balance: String(b.balance), held: String(b.held) }));
}

export function balancesFromJson(json: unknown): AccountBalance[] {
  if (!Array.isArray(json)) return [];
  return json.map((b: { account: string; balance: string; held: string }) => ({
    account: b.account, balance: BigInt(b.balance), held: BigInt(b.held),
  }));
}
