// The batch transaction's SQL, in typed Kysely over the generated schema (src/db/schema.ts). Every
// value travels as a bound parameter; a list travels as one parameter (a JSON array) that becomes
// an array on the server and `unnest` turns into rows, so a batch of any size is the same few
// statements.
import { type Kysely, type RawBuilder, sql } from 'kysely';
import { balancesToJson } from '../commands/balances-json.ts';
import { expiryIdPrefix, expiryTask, resultsChannel } from '../commands/contract.ts';
import type { DB } from '../db/schema.ts';
import type { BatchPlan } from './plan.ts';

type Db = Kysely<DB>;

type ElementType = 'int4' | 'int8' | 'text' | 'json' | 'jsonb' | 'timestamptz';

/**
 * A list parameter's text: a JSON array, bigints as strings of digits. node-postgres would send a
 * JS array as an array literal that it builds and escapes element by element, which was a fifth of
 * everything a worker allocated under load (bench/LOG.md); JSON.stringify does it natively.
 */
export function jsonList(values: readonly unknown[]): string {
  return JSON.stringify(values.some((v) => typeof v === 'bigint') ? values.map(digitsOfBigint) : values);
}

/** A bigint as its string of digits (how money is written in JSON everywhere); anything else as is. */
function digitsOfBigint(value: unknown): unknown {
  return typeof value === 'bigint' ? String(value) : value;
}

/** `parameter` (a jsonList) as an array of `type` on the server, in the list's order. */
function serverArray<A extends readonly unknown[]>(parameter: unknown, type: ElementType): RawBuilder<A> {
  return sql<A>`array(select e::${sql.raw(type)} from json_array_elements_text(${parameter}::json)
    with ordinality as t(e, i) order by i)`;
}

/** A list as one bound parameter, an array of `type` on the server. */
function array<T>(values: readonly T[], type: ElementType): RawBuilder<T[]> {
  return serverArray<T[]>(jsonList(values), type);
}

/** JSON text of a value whose money is bigint; bigint becomes a string of digits, as stored everywhere. */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => digitsOfBigint(v));
}

/** How long after a hold's expiry its fallback job falls due (the sweeper normally expires it first). */
export const expiryJobLagSeconds = 2;

/**
 * Locks the batch's slots in ascending order, in one statement, and holds them to commit. Returns
 * one row: how many slots were locked (the caller checks that every slot was there to lock) and
 * the clock read after the last lock was granted, the batch's "now". One row, not one per slot:
 * the worker reads it while the batch holds its locks.
 */
export function lockSlots(db: Db, slots: readonly number[]) {
  return db
    .selectFrom((qc) =>
      qc
        .selectFrom('billing.lock_slots')
        .select('slot')
        .where('slot', '=', (eb) => eb.fn.any(array(slots, 'int4')))
        .orderBy('slot')
        .forUpdate()
        .as('locked'),
    )
    .select((eb) => [eb.fn.countAll<bigint>().as('locked'), sql<Date>`max(clock_timestamp())`.as('now')]);
}

// The reads that decide. Each is a statement after lockSlots, so its snapshot is taken after the
// slot locks were granted: a creator that held one of them has committed and is seen. None needs
// another's rows, so all of them can be sent at once (pipelined) behind lockSlots.

export function selectEarlierResults(db: Db, ids: readonly string[]) {
  return db
    .selectFrom('billing.operations')
    .select(['id', 'seq', 'type', 'status', 'code', 'message', 'balances', 'fingerprint', 'job_id'])
    .where('id', '=', (eb) => eb.fn.any(array(ids, 'text')));
}

export function lockHolds(db: Db, holds: readonly string[]) {
  return db
    .selectFrom('billing.holds')
    .select(['hold', 'account', 'amount', 'status', 'expires_at'])
    .where('hold', '=', (eb) => eb.fn.any(array(holds, 'text')))
    .orderBy('hold')
    .forUpdate();
}

/**
 * The accounts the commands name, and the accounts of the holds they name (a hold's account never
 * changes). One array of ids, so that the accounts are index lookups (an OR with a subquery would
 * be a scan of the whole table).
 */
export function lockAccounts(db: Db, accounts: readonly string[], holds: readonly string[]) {
  return db
    .selectFrom('billing.accounts')
    .select(['account', 'currency', 'balance', 'held'])
    .where('account', '=', (eb) =>
      eb.fn.any(
        sql<string[]>`${array(accounts, 'text')} || array(${eb
          .selectFrom('billing.holds as h')
          .select('h.account')
          .where('h.hold', '=', eb.fn.any(array(holds, 'text')))})`,
      ),
    )
    .orderBy('account')
    .forUpdate();
}

/**
 * The values of one batch's writes statement, by parameter name: every list is one array parameter.
 * `notify` false: the NOTIFY queue is (nearly) full, so the statement sends no notification and
 * schedules no expiry job (graphile_worker.add_job always notifies); see writeStatement.
 */
export function writeValues(plan: BatchPlan, notify = true) {
  const openedIds = new Set(plan.openedAccounts.map((a) => a.account));
  const opened = plan.openedAccounts.map((a) => ({
    ...a,
    ...(plan.changedAccounts.get(a.account) ?? { balance: 0n, held: 0n }),
  }));
  const changed = [...plan.changedAccounts.values()].filter((a) => !openedIds.has(a.account));
  const closedById = new Map(plan.closedHolds.map((c) => [c.hold, c]));
  const createdIds = new Set(plan.createdHolds.map((h) => h.hold));
  const created = plan.createdHolds.map((h) => ({ ...h, closed: closedById.get(h.hold) }));
  const closed = plan.closedHolds.filter((c) => !createdIds.has(c.hold));
  const ops = plan.operations;
  return {
    openedAccount: opened.map((a) => a.account),
    openedCurrency: opened.map((a) => a.currency),
    openedBalance: opened.map((a) => a.balance),
    openedHeld: opened.map((a) => a.held),
    changedCount: changed.length,
    changedAccount: changed.map((a) => a.account),
    changedBalance: changed.map((a) => a.balance),
    changedHeld: changed.map((a) => a.held),
    createdHold: created.map((h) => h.hold),
    createdAccount: created.map((h) => h.account),
    createdAmount: created.map((h) => h.amount),
    createdExpiresAt: created.map((h) => h.expiresAt),
    createdOperation: created.map((h) => h.operationId),
    createdStatus: created.map((h) => h.closed?.status ?? h.status),
    createdCaptured: created.map((h) => h.closed?.captured ?? 0n),
    createdCapturedTo: created.map((h) => h.closed?.capturedTo ?? null),
    createdClosedBy: created.map((h) => h.closed?.operationId ?? null),
    closedCount: closed.length,
    closedHold: closed.map((c) => c.hold),
    closedStatus: closed.map((c) => c.status),
    closedCaptured: closed.map((c) => c.captured),
    closedCapturedTo: closed.map((c) => c.capturedTo),
    closedBy: closed.map((c) => c.operationId),
    entryOperation: plan.entries.map((e) => e.operationId),
    entryAccount: plan.entries.map((e) => e.account),
    entryBalanceDelta: plan.entries.map((e) => e.balanceDelta),
    entryHeldDelta: plan.entries.map((e) => e.heldDelta),
    entryBalanceAfter: plan.entries.map((e) => e.balanceAfter),
    entryHeldAfter: plan.entries.map((e) => e.heldAfter),
    expiryHold: plan.expiries.map((e) => e.hold),
    expiryRunAt: plan.expiries.map((e) => e.runAt),
    conflictId: plan.conflicts.map((c) => c.id),
    conflictType: plan.conflicts.map((c) => c.type),
    conflictRequest: plan.conflicts.map((c) => c.request),
    conflictJob: plan.conflicts.map((c) => c.jobId),
    conflictNotice: plan.conflicts.map((c) =>
      jsonText({ id: c.id, type: c.type, status: 'rejected', code: 'id_conflict', job_id: c.jobId }),
    ),
    hasResults: ops.length > 0,
    notify,
    resultId: ops.map((o) => o.id),
    resultType: ops.map((o) => o.type),
    resultStatus: ops.map((o) => o.status),
    resultCode: ops.map((o) => o.code),
    resultMessage: ops.map((o) => o.message),
    resultRequest: ops.map((o) => o.request),
    resultFingerprint: ops.map((o) => o.fingerprint),
    resultJob: ops.map((o) => o.jobId),
    resultBalances: ops.map((o) => jsonText(balancesToJson(o.balances))),
  };
}

type WriteValues = ReturnType<typeof writeValues>;
type WriteParameterName = keyof WriteValues;
type ListName = {
  [N in WriteParameterName]: WriteValues[N] extends readonly unknown[] ? N : never;
}[WriteParameterName];

/**
 * Stands in a compiled statement's parameter list for the value of that name (see compiledWrites);
 * a list's value is sent as its jsonList.
 */
export class WriteParameter {
  readonly name: WriteParameterName;
  readonly isList: boolean;
  constructor(name: WriteParameterName, isList: boolean) {
    this.name = name;
    this.isList = isList;
  }

  valueIn(values: WriteValues): unknown {
    const value = values[this.name];
    return this.isList && Array.isArray(value) ? jsonList(value) : value;
  }
}

/** A named list parameter of the writes statement, an array of `type` on the server. */
function list<N extends ListName>(name: N, type: ElementType): RawBuilder<WriteValues[N]> {
  return serverArray<WriteValues[N]>(new WriteParameter(name, true), type);
}

function scalar<N extends WriteParameterName>(name: N): RawBuilder<WriteValues[N]> {
  return sql<WriteValues[N]>`${new WriteParameter(name, false)}`;
}

/**
 * Every write of a batch in ONE statement of data-modifying CTEs. Its text is the same for every
 * batch: it is built and compiled once, and each batch fills its named parameters from writeValues
 * (building it per batch cost more than the rest of the batch's client work together). PostgreSQL
 * runs sibling CTEs in no defined order and all of them see the statement's snapshot, so:
 * - an account or hold created by this batch is inserted with its final state (a sibling UPDATE
 *   could not see it); only rows that existed before are updated;
 * - the seq lock is taken after every ledger write (its CTE reads their counts), and the result rows
 *   after the seq lock (they are gated on its row): the lock is held from there to commit, so seqs
 *   are handed out in commit order and its hold time is the result insert and the commit;
 * - the notification reads the inserted results (one per transaction, with the highest seq);
 * - side effects of plain SELECTs (add_job, pg_notify) run because the final row reads them;
 * - every notification, and every add_job (which notifies), is gated on the bound `notify`: when
 *   PostgreSQL's NOTIFY queue is (nearly) full a notifying commit fails, and results must commit
 *   whatever the queue holds. Readers poll by id or cursor anyway; a hold without its expiry job is
 *   expired by the sweeper (src/worker/expiry-sweeper.ts).
 * The journal's references (an entry's account and operation) are checked once, at the end of the
 * statement, by a statement trigger (sql/0015).
 */
export function writeStatement(db: Db) {
  const openedRows = sql<{ account: string; currency: string; balance: bigint; held: bigint }>`unnest(
    ${list('openedAccount', 'text')}, ${list('openedCurrency', 'text')}, ${list('openedBalance', 'int8')}, ${list('openedHeld', 'int8')})`.as<'v'>(
    sql`v(account, currency, balance, held)`,
  );
  const changedRows = sql<{ account: string; balance: bigint; held: bigint }>`unnest(
    ${list('changedAccount', 'text')}, ${list('changedBalance', 'int8')}, ${list('changedHeld', 'int8')})`.as<'v'>(
    sql`v(account, balance, held)`,
  );
  const createdRows = sql<{
    hold: string;
    account: string;
    amount: bigint;
    expires_at: Date | null;
    operation_id: string;
    status: string;
    captured: bigint;
    captured_to: string | null;
    closed_by: string | null;
  }>`unnest(
    ${list('createdHold', 'text')}, ${list('createdAccount', 'text')}, ${list('createdAmount', 'int8')},
    ${list('createdExpiresAt', 'timestamptz')}, ${list('createdOperation', 'text')}, ${list('createdStatus', 'text')},
    ${list('createdCaptured', 'int8')}, ${list('createdCapturedTo', 'text')}, ${list('createdClosedBy', 'text')})`.as<'v'>(
    sql`v(hold, account, amount, expires_at, operation_id, status, captured, captured_to, closed_by)`,
  );
  const closedRows = sql<{
    hold: string;
    status: string;
    captured: bigint;
    captured_to: string | null;
    closed_by: string;
  }>`unnest(
    ${list('closedHold', 'text')}, ${list('closedStatus', 'text')}, ${list('closedCaptured', 'int8')},
    ${list('closedCapturedTo', 'text')}, ${list('closedBy', 'text')})`.as<'v'>(
    sql`v(hold, status, captured, captured_to, closed_by)`,
  );
  const entryRows = sql<{
    operation_id: string;
    account: string;
    balance_delta: bigint;
    held_delta: bigint;
    balance_after: bigint;
    held_after: bigint;
    n: bigint;
  }>`unnest(
    ${list('entryOperation', 'text')}, ${list('entryAccount', 'text')}, ${list('entryBalanceDelta', 'int8')},
    ${list('entryHeldDelta', 'int8')}, ${list('entryBalanceAfter', 'int8')}, ${list('entryHeldAfter', 'int8')})
    with ordinality`.as<'v'>(sql`v(operation_id, account, balance_delta, held_delta, balance_after, held_after, n)`);
  const expiryRows = sql<{
    hold: string;
    run_at: Date;
  }>`unnest(${list('expiryHold', 'text')}, ${list('expiryRunAt', 'timestamptz')})`.as<'v'>(sql`v(hold, run_at)`);
  const conflictRows = sql<{ id: string; type: string; request: string; job_id: bigint | null; notice: string }>`unnest(
    ${list('conflictId', 'text')}, ${list('conflictType', 'text')}, ${list('conflictRequest', 'json')},
    ${list('conflictJob', 'int8')}, ${list('conflictNotice', 'text')})`.as<'v'>(
    sql`v(id, type, request, job_id, notice)`,
  );
  const resultRows = sql<{
    id: string;
    type: string;
    status: string;
    code: string;
    message: string | null;
    request: string;
    fingerprint: string;
    job_id: bigint | null;
    balances: string;
    n: bigint;
  }>`unnest(
    ${list('resultId', 'text')}, ${list('resultType', 'text')}, ${list('resultStatus', 'text')}, ${list('resultCode', 'text')},
    ${list('resultMessage', 'text')}, ${list('resultRequest', 'json')}, ${list('resultFingerprint', 'text')},
    ${list('resultJob', 'int8')}, ${list('resultBalances', 'jsonb')})
    with ordinality`.as<'v'>(sql`v(id, type, status, code, message, request, fingerprint, job_id, balances, n)`);

  return (
    db
      .with('opened', (qc) =>
        qc
          .insertInto('billing.accounts')
          .columns(['account', 'currency', 'balance', 'held'])
          .expression(qc.selectFrom(openedRows).select(['v.account', 'v.currency', 'v.balance', 'v.held']))
          .returning('account'),
      )
      // The limit tells the planner how few rows come (it guesses 100 for a function): index
      // lookups, not a hash join over the whole accounts table.
      .with('rebalanced', (qc) =>
        qc
          .updateTable('billing.accounts as a')
          .from(qc.selectFrom(changedRows).selectAll().limit(scalar('changedCount')).as('c'))
          .set((eb) => ({ balance: eb.ref('c.balance'), held: eb.ref('c.held'), updated_at: sql<Date>`now()` }))
          .whereRef('a.account', '=', 'c.account')
          .returning('a.account'),
      )
      .with('new_holds', (qc) =>
        qc
          .insertInto('billing.holds')
          .columns([
            'hold',
            'account',
            'amount',
            'expires_at',
            'operation_id',
            'status',
            'captured',
            'captured_to',
            'closed_by',
            'closed_at',
          ])
          .expression(
            qc.selectFrom(createdRows).select((eb) => [
              'v.hold',
              'v.account',
              'v.amount',
              'v.expires_at',
              'v.operation_id',
              'v.status',
              'v.captured',
              'v.captured_to',
              'v.closed_by',
              eb
                .case()
                .when('v.closed_by', 'is not', null)
                .then(sql<Date>`now()`)
                .else(null)
                .end()
                .as('closed_at'),
            ]),
          )
          .returning('hold'),
      )
      .with('closed_holds', (qc) =>
        qc
          .updateTable('billing.holds as h')
          .from(qc.selectFrom(closedRows).selectAll().limit(scalar('closedCount')).as('c'))
          .set((eb) => ({
            status: eb.ref('c.status'),
            captured: eb.ref('c.captured'),
            captured_to: eb.ref('c.captured_to'),
            closed_by: eb.ref('c.closed_by'),
            closed_at: sql<Date>`now()`,
          }))
          .whereRef('h.hold', '=', 'c.hold')
          .returning('h.hold'),
      )
      // In plan order: entry ids increase per account in the order the changes were applied.
      .with('new_entries', (qc) =>
        qc
          .insertInto('billing.entries')
          .columns(['operation_id', 'account', 'balance_delta', 'held_delta', 'balance_after', 'held_after'])
          .expression(
            qc
              .selectFrom(entryRows)
              .select([
                'v.operation_id',
                'v.account',
                'v.balance_delta',
                'v.held_delta',
                'v.balance_after',
                'v.held_after',
              ])
              .orderBy('v.n'),
          )
          .returning('id'),
      )
      .with('new_conflicts', (qc) =>
        qc
          .insertInto('billing.id_conflicts')
          .columns(['id', 'type', 'request', 'job_id'])
          .expression(qc.selectFrom(conflictRows).select(['v.id', 'v.type', 'v.request', 'v.job_id']))
          .returning('conflict_id'),
      )
      // An id conflict writes no result row; its notification is its own (small) payload.
      .with('conflicts_notified', (qc) =>
        qc
          .selectFrom(conflictRows)
          .select(sql<string>`pg_notify(${resultsChannel}, v.notice)`.as('sent'))
          .where(sql<boolean>`${scalar('notify')}`),
      )
      // run_at is judged by the database clock; job_key keeps one expiry job per hold. Every
      // worker's expiry sweeper expires a hold as it falls due and deletes its job: the job is the
      // fallback, due expiryJobLagSeconds later, so that it does not fill the local queues with
      // expiries the sweeper is applying. A higher priority (lower number) puts it ahead of a
      // backlog of commands (docs/guarantees.md: within 5 s).
      .with('expiries', (qc) =>
        qc
          .selectFrom(expiryRows)
          .select(
            sql<string>`graphile_worker.add_job(${expiryTask}, json_build_object('hold', v.hold),
        run_at => v.run_at + make_interval(secs => ${expiryJobLagSeconds}), job_key => ${expiryIdPrefix} || v.hold,
        max_attempts => ${25}, priority => ${-10})`.as('job'),
          )
          .where(sql<boolean>`${scalar('notify')}`),
      )
      .with('seq_locked', (qc) =>
        qc
          .selectFrom('billing.result_seq_lock')
          .select('only_row')
          .where(
            sql<boolean>`${scalar('hasResults')} and (select count(*) from opened) + (select count(*) from rebalanced)
        + (select count(*) from new_holds) + (select count(*) from closed_holds) + (select count(*) from new_entries)
        + (select count(*) from new_conflicts) >= 0`,
          )
          .forUpdate(),
      )
      .with('results', (qc) =>
        qc
          .insertInto('billing.operations')
          .columns(['id', 'type', 'status', 'code', 'message', 'request', 'fingerprint', 'job_id', 'balances'])
          .expression(
            qc
              .selectFrom(resultRows)
              .select([
                'v.id',
                'v.type',
                'v.status',
                'v.code',
                'v.message',
                'v.request',
                'v.fingerprint',
                'v.job_id',
                'v.balances',
              ])
              .where(({ exists, selectFrom }) => exists(selectFrom('seq_locked').select('only_row')))
              .orderBy('v.n'),
          )
          .returning(['id', 'seq']),
      )
      .with('notified', (qc) =>
        qc
          .selectFrom('results')
          .select(
            sql<string>`pg_notify(${resultsChannel}, json_build_object('seq', max(seq)::text, 'count', count(*))::text)`.as(
              'sent',
            ),
          )
          .having(({ fn, eb }) => eb.and([eb(fn.countAll(), '>', eb.val(0)), sql<boolean>`${scalar('notify')}`])),
      )
      // One driving row, so that the effects above are read (and so run) even when no result is written.
      .with('effects', (qc) =>
        qc.selectNoFrom(({ selectFrom, fn }) => [
          selectFrom('expiries').select(fn.countAll<bigint>().as('n')).as('expiries'),
          selectFrom('conflicts_notified').select(fn.countAll<bigint>().as('n')).as('conflict_notices'),
          selectFrom('notified').select(fn.countAll<bigint>().as('n')).as('notices'),
        ]),
      )
      .selectFrom('effects')
      .leftJoin('results', (join) => join.onTrue())
      .select(['results.id', 'results.seq', 'effects.expiries', 'effects.conflict_notices', 'effects.notices'])
  );
}
