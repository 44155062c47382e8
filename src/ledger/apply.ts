import type pg from 'pg';
import { balancesFromJson, balancesToJson } from '../commands/balances-json.ts';
import { expireTaskName, type OperationType, type ResultCode, type ResultStatus } from '../commands/codes.ts';
import { type BatchItem, type BatchPlan, type ItemOutcome, planBatch, type StoredResult } from './plan.ts';
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
 *
 * Two round trips, each a multi-statement simple query (values travel as escaped JSON literals,
 * see `literal`): the reads (begin, locks, earlier results, locked rows, clock), then every write
 * ending with the seq lock, the result rows, the notification and the commit. The seq lock is held
 * from its statement to the commit, and commits are serialized by it: with nothing between them
 * but the server's own work, its hold time is the insert and the commit, not client round trips.
 * In READ COMMITTED each statement of a multi-statement query takes its own snapshot, so the
 * earlier-results read sees every result committed before the key locks were granted, as before.
 */
export async function applyBatch(pool: pg.Pool, items: BatchItem[]): Promise<AppliedBatch> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    const read = await readPhase(client, items);
    const plan = planBatch(items, read.existing, read.view);
    const seqs = await writePhase(client, plan);
    const outcomes = plan.outcomes.map((outcome) =>
      outcome.kind === 'recorded' ? { ...outcome, seq: seqs.get(outcome.result.id) } : outcome);
    const highestSeq = seqs.size ? [...seqs.values()].reduce((a, b) => (a > b ? a : b)) : null;
    return { outcomes, highestSeq };
  } catch (error) {
    // The transaction may be open (a failed statement aborts it) or already ended by a failed commit;
    // rollback covers both. A connection that cannot even roll back is not given back to the pool.
    await client.query('rollback').catch((rollbackError: Error) => { broken = rollbackError; });
    throw error;
  } finally {
    client.release(broken);
  }
}

type Client = pg.PoolClient;

interface Statement {
  name: string;
  sql: string;
}

/** Runs statements as one simple query and returns each one's rows by name. */
async function runStatements(client: Client, statements: Statement[]): Promise<Map<string, Record<string, unknown>[]>> {
  const results = await client.query(statements.map((s) => s.sql).join(';\n')) as unknown as pg.QueryResult | pg.QueryResult[];
  const list = Array.isArray(results) ? results : [results];
  if (list.length !== statements.length) throw new Error(`expected ${statements.length} results, got ${list.length}`);
  return new Map(statements.map((s, i) => [s.name, list[i]!.rows]));
}

/** A JSON document as an SQL literal: the one way values enter these queries. */
function json(_client: Client, value: unknown): string {
  return `${literal(JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? String(v) : v)))}::jsonb`;
}

/**
 * What pg's escapeLiteral produces, without its character-by-character loop (a batch's literal is
 * tens of kilobytes): quotes doubled, and backslashes doubled in an E'' string so that the result
 * does not depend on standard_conforming_strings. JSON text holds no NUL, so nothing else can end it.
 */
export function literal(text: string): string {
  const quoted = text.replaceAll("'", "''");
  return text.includes('\\') ? ` E'${quoted.replaceAll('\\', '\\\\')}'` : `'${quoted}'`;
}

function textArray(client: Client, values: string[]): string {
  return `array(select jsonb_array_elements_text(${json(client, values)}))`;
}

interface ReadPhase {
  existing: Map<string, StoredResult>;
  view: LedgerView;
}

async function readPhase(client: Client, items: BatchItem[]): Promise<ReadPhase> {
  const holdIds = holdIdsOf(items);
  const statements: Statement[] = [
    { name: 'begin', sql: 'begin' },
    // Hashes sorted, duplicates folded: two batches sharing keys take them in the same order.
    { name: 'keys', sql: `select pg_advisory_xact_lock(${lockClass.key}, h)
      from (select distinct hashtext(k) as h from unnest(${textArray(client, keysOf(items))}) as k order by 1) as sorted` },
    { name: 'results', sql: `select id, seq, type, status, code, message, balances, fingerprint, job_id
      from billing.operations where id = any(${textArray(client, items.map(idOf))})` },
  ];
  if (holdIds.length) {
    statements.push({ name: 'holds', sql: `select hold, account, amount, status, expires_at from billing.holds
      where hold = any(${textArray(client, holdIds)}) order by hold for update` });
  }
  // The accounts of the holds just locked join the command's own: a hold's account never changes.
  const holdAccounts = holdIds.length ? ` || array(select account from billing.holds where hold = any(${textArray(client, holdIds)}))` : '';
  statements.push(
    { name: 'accounts', sql: `select account, currency, balance, held from billing.accounts
      where account = any(${textArray(client, accountIdsOf(items))}${holdAccounts}) order by account for update` },
    { name: 'now', sql: 'select clock_timestamp() as now' },
  );
  const rows = await runStatements(client, statements);
  const existing = new Map((rows.get('results') ?? []).map((row) => [row.id as string, {
    id: row.id as string,
    seq: row.seq as bigint,
    type: row.type as OperationType,
    status: row.status as ResultStatus,
    code: row.code as ResultCode,
    message: row.message as string | null,
    balances: balancesFromJson(row.balances),
    fingerprint: row.fingerprint as string,
    jobId: row.job_id as bigint | null,
  } satisfies StoredResult]));
  const holds = new Map((rows.get('holds') ?? []).map((row) => [row.hold as string, {
    hold: row.hold as string,
    account: row.account as string,
    amount: row.amount as bigint,
    status: row.status as HoldState['status'],
    expiresAt: row.expires_at as Date | null,
  } satisfies HoldState]));
  const accounts = new Map((rows.get('accounts') ?? []).map((row) => [row.account as string, {
    account: row.account as string,
    currency: row.currency as string,
    balance: row.balance as bigint,
    held: row.held as bigint,
  } satisfies AccountState]));
  const now = rows.get('now')![0]!.now as Date;
  return { existing, view: { accounts, holds, now } };
}

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

/** The accounts the commands name; the accounts of their holds are added in SQL. */
function accountIdsOf(items: BatchItem[]): string[] {
  const ids = new Set<string>();
  for (const { parsed } of items) {
    if (!parsed.ok) continue;
    const command = parsed.command;
    if ('account' in command) ids.add(command.account);
    if (command.type === 'transfer') { ids.add(command.from); ids.add(command.to); }
    if (command.type === 'capture' && command.to !== undefined) ids.add(command.to);
  }
  return [...ids];
}

async function writePhase(client: Client, plan: BatchPlan): Promise<Map<string, bigint>> {
  const statements = ledgerWrites(client, plan);
  if (plan.conflicts.length) {
    // An id conflict writes no result row; its notification is its own (small) payload.
    const payloads = plan.conflicts.map((c) => JSON.stringify({ id: c.id, type: c.type, status: 'rejected', code: 'id_conflict', job_id: c.jobId === null ? null : String(c.jobId) }));
    statements.push({ name: 'conflict_notify', sql: `select pg_notify('${resultsChannel}', p) from unnest(${textArray(client, payloads)}) as p` });
  }
  if (plan.operations.length) {
    // Result rows go last, under the seq lock, which is held to commit: seq order is commit order.
    // One notification per transaction with the highest seq written (a wake-up, not the data).
    statements.push(
      { name: 'seq_lock', sql: `select pg_advisory_xact_lock(${lockClass.seq}, 0)` },
      { name: 'results', sql: `with inserted as (
          insert into billing.operations (id, type, status, code, message, request, fingerprint, job_id, balances)
          select v->>'id', v->>'type', v->>'status', v->>'code', v->>'message', (v->>'request')::json, v->>'fingerprint',
                 (v->>'job_id')::int8, v->'balances'
          from jsonb_array_elements(${json(client, plan.operations.map((op) => ({
            id: op.id, type: op.type, status: op.status, code: op.code, message: op.message, request: op.request,
            fingerprint: op.fingerprint, job_id: op.jobId, balances: balancesToJson(op.balances),
          })))}) with ordinality as e(v, n)
          order by n
          returning id, seq),
        notified as (
          select pg_notify('${resultsChannel}', '{"seq":"' || max(seq) || '","count":' || count(*) || '}') from inserted)
        select inserted.id, inserted.seq from inserted cross join notified` },
    );
  }
  if (!statements.length) {
    await client.query('commit');
    return new Map();
  }
  statements.push({ name: 'commit', sql: 'commit' });
  const rows = await runStatements(client, statements);
  return new Map((rows.get('results') ?? []).map((row) => [row.id as string, row.seq as bigint]));
}

function ledgerWrites(client: Client, plan: BatchPlan): Statement[] {
  const statements: Statement[] = [];
  if (plan.openedAccounts.length) {
    statements.push({ name: 'open', sql: `insert into billing.accounts (account, currency)
      select account, currency from jsonb_to_recordset(${json(client, plan.openedAccounts)}) as v(account text, currency text)` });
  }
  if (plan.changedAccounts.size) {
    // The limit tells the planner how few rows come (a function scan counts as 100): index lookups,
    // not a hash join over the whole accounts table.
    statements.push({ name: 'balances', sql: `update billing.accounts as a set balance = v.balance, held = v.held, updated_at = now()
      from (select * from jsonb_to_recordset(${json(client, [...plan.changedAccounts.values()])}) as r(account text, balance int8, held int8)
            limit ${plan.changedAccounts.size}) as v
      where a.account = v.account` });
  }
  if (plan.createdHolds.length) {
    statements.push({ name: 'new_holds', sql: `insert into billing.holds (hold, account, amount, expires_at, operation_id)
      select hold, account, amount, "expiresAt", "operationId"
      from jsonb_to_recordset(${json(client, plan.createdHolds)}) as v(hold text, account text, amount int8, "expiresAt" timestamptz, "operationId" text)` });
  }
  if (plan.closedHolds.length) {
    statements.push({ name: 'closed_holds', sql: `update billing.holds as h
      set status = v.status, captured = v.captured, captured_to = v."capturedTo", closed_by = v."operationId", closed_at = now()
      from (select * from jsonb_to_recordset(${json(client, plan.closedHolds)})
              as r(hold text, status text, captured int8, "capturedTo" text, "operationId" text) limit ${plan.closedHolds.length}) as v
      where h.hold = v.hold` });
  }
  if (plan.entries.length) {
    // In plan order: entry ids increase per account in the order the changes were applied.
    statements.push({ name: 'entries', sql: `insert into billing.entries (operation_id, account, balance_delta, held_delta, balance_after, held_after)
      select v->>'operationId', v->>'account', (v->>'balanceDelta')::int8, (v->>'heldDelta')::int8,
             (v->>'balanceAfter')::int8, (v->>'heldAfter')::int8
      from jsonb_array_elements(${json(client, plan.entries)}) with ordinality as e(v, n)
      order by n` });
  }
  if (plan.expiries.length) {
    // run_at is judged by the database clock; job_key keeps one expiry job per hold. A higher
    // priority (lower number) puts a due expiry ahead of a backlog of commands (SPEC: within 5 s).
    statements.push({ name: 'expiries', sql: `select graphile_worker.add_job('${expireTaskName}', json_build_object('hold', v.hold),
        run_at => v."runAt", job_key => 'expire:' || v.hold, max_attempts => 25, priority => -10)
      from jsonb_to_recordset(${json(client, plan.expiries)}) as v(hold text, "runAt" timestamptz)` });
  }
  if (plan.conflicts.length) {
    statements.push({ name: 'conflicts', sql: `insert into billing.id_conflicts (id, type, request, job_id)
      select v->>'id', v->>'type', (v->>'request')::json, (v->>'jobId')::int8
      from jsonb_array_elements(${json(client, plan.conflicts)}) as e(v)` });
  }
  return statements;
}
