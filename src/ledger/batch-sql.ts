// The batch transaction's SQL, in typed Kysely over the generated schema (src/db/schema.ts). Every
// value travels as a bound parameter; a list travels as one parameter (a JSON array) that becomes
// an array on the server and `unnest` turns into rows, so a batch of any size is the same few
// statements.
import { type InsertType, type Kysely, type RawBuilder, sql } from 'kysely';
import { balancesToJson } from '../commands/balances-json.ts';
import { holdExpiry, resultsChannel } from '../commands/contract.ts';
import type { DB } from '../db/schema.ts';
import { defaultPolicy } from '../commands/decision.ts';
import type { AccountAfter, BatchPlan } from './plan.ts';

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
    .select(['id', 'seq', 'type', 'status', 'code', 'message', 'balances', 'job_id', 'created_at', 'fingerprint'])
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
 * The commands that reversals name, with their journal (balance changes in the order written). A
 * result row and its entries never change once written, so this is read twice: before the batch
 * locks (to know which accounts to lock) and under its locks (to decide).
 */
export function selectOperations(db: Db, ids: readonly string[]) {
  return db
    .selectFrom('billing.operations')
    .select(['id', 'type', 'status'])
    .where('id', '=', (eb) => eb.fn.any(array(ids, 'text')));
}

export function selectOperationEntries(db: Db, ids: readonly string[]) {
  return db
    .selectFrom('billing.entries')
    .select(['operation_id', 'account', 'balance_delta'])
    .where('operation_id', '=', (eb) => eb.fn.any(array(ids, 'text')))
    .where('balance_delta', '<>', 0n)
    .orderBy('id');
}

/** How much of those commands earlier reversals put back; read under the lock of the command's id. */
export function selectReversalTotals(db: Db, ids: readonly string[]) {
  return db
    .selectFrom('billing.reversal_totals')
    .select(['operation_id', 'total', 'reversed'])
    .where('operation_id', '=', (eb) => eb.fn.any(array(ids, 'text')));
}

/**
 * The accounts the commands name, and the accounts of the holds they name (a hold's account never
 * changes). One array of ids, so that the accounts are index lookups (an OR with a subquery would
 * be a scan of the whole table).
 */
export function lockAccounts(db: Db, accounts: readonly string[], holds: readonly string[]) {
  return db
    .selectFrom('billing.accounts')
    .select(['account', 'currency', 'balance', 'held', 'overdraft_limit', 'max_balance', 'status'])
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
 * The columns one list of rows carries, each with the element type of its array: the one place a
 * written column is named. The keys are the table's columns in src/db/schema.ts, so a column that
 * does not exist fails to compile and a row's value must have the column's type; `extra` carries
 * what the statement needs beside the table's columns. `ordered` numbers the rows (`n`) in the
 * order they were planned.
 */
interface RowList<Table extends keyof DB> {
  table: Table;
  columns: TableColumns<Table>;
  extra?: ExtraColumns;
  ordered?: boolean;
}
type TableColumns<Table extends keyof DB> = { readonly [C in keyof DB[Table]]?: ElementType };
type ExtraColumns = { readonly [name: string]: ElementType };
/** A row of a list, as writeValues builds it: each column's value has the type the table takes. */
type RowOf<L> = L extends { table: infer Table extends keyof DB; columns: infer Columns }
  ? { -readonly [C in keyof Columns]: C extends keyof DB[Table] ? InsertType<DB[Table][C]> : never } & ExtraOf<L>
  : never;
type ExtraOf<L> = L extends { extra: infer Extra } ? { -readonly [E in keyof Extra]: string } : unknown;

const rowLists = {
  opened: {
    table: 'billing.accounts',
    columns: {
      account: 'text',
      currency: 'text',
      balance: 'int8',
      held: 'int8',
      overdraft_limit: 'int8',
      max_balance: 'int8',
      status: 'text',
    },
  },
  changed: {
    table: 'billing.accounts',
    columns: {
      account: 'text',
      balance: 'int8',
      held: 'int8',
      overdraft_limit: 'int8',
      max_balance: 'int8',
      status: 'text',
    },
  },
  created: {
    table: 'billing.holds',
    columns: {
      hold: 'text',
      account: 'text',
      amount: 'int8',
      expires_at: 'timestamptz',
      operation_id: 'text',
      status: 'text',
      captured: 'int8',
      captured_to: 'text',
      closed_by: 'text',
    },
  },
  closed: {
    table: 'billing.holds',
    columns: { hold: 'text', status: 'text', captured: 'int8', captured_to: 'text', closed_by: 'text' },
  },
  entries: {
    table: 'billing.entries',
    columns: {
      operation_id: 'text',
      account: 'text',
      balance_delta: 'int8',
      held_delta: 'int8',
      balance_after: 'int8',
      held_after: 'int8',
      overdraft_limit: 'int8',
      max_balance: 'int8',
    },
    ordered: true,
  },
  /** What a batch's reversals of one command put back, added to its running total. */
  reversed: {
    table: 'billing.reversal_totals',
    columns: { operation_id: 'text', total: 'int8', reversed: 'int8' },
  },
  /** A hold whose expiry job to (re)schedule, at `run_at`. */
  expiries: { table: 'billing.holds', columns: { hold: 'text' }, extra: { run_at: 'timestamptz' } },
  /** `notice` is the conflict's notification payload. */
  conflicts: {
    table: 'billing.id_conflicts',
    columns: { id: 'text', type: 'text', request: 'json', job_id: 'int8' },
    extra: { notice: 'text' },
  },
  results: {
    table: 'billing.operations',
    columns: {
      id: 'text',
      type: 'text',
      status: 'text',
      code: 'text',
      message: 'text',
      request: 'json',
      fingerprint: 'text',
      job_id: 'int8',
      balances: 'jsonb',
      reverses: 'text',
      accounts: 'jsonb',
    },
    ordered: true,
  },
} as const satisfies {
  opened: RowList<'billing.accounts'>;
  changed: RowList<'billing.accounts'>;
  created: RowList<'billing.holds'>;
  closed: RowList<'billing.holds'>;
  entries: RowList<'billing.entries'>;
  reversed: RowList<'billing.reversal_totals'>;
  expiries: RowList<'billing.holds'>;
  conflicts: RowList<'billing.id_conflicts'>;
  results: RowList<'billing.operations'>;
};
type RowLists = typeof rowLists;
type ListName = keyof RowLists;

/**
 * The rows of one batch's writes statement, one list per write, and whether it notifies: `notify`
 * false means the NOTIFY queue is (nearly) full, so the statement sends no notification and
 * schedules no expiry job (graphile_worker.add_job always notifies); see writeStatement.
 */
export type WriteValues = { [L in ListName]: RowOf<RowLists[L]>[] } & { notify: boolean };

/** The rows one batch writes, from its plan. */
export function writeValues(plan: BatchPlan, notify = true): WriteValues {
  const openedIds = new Set(plan.openedAccounts.map((a) => a.account));
  const closedById = new Map(plan.closedHolds.map((c) => [c.hold, c]));
  const createdIds = new Set(plan.createdHolds.map((h) => h.hold));
  return {
    opened: plan.openedAccounts.map((a) => {
      const after = plan.changedAccounts.get(a.account) ?? { balance: 0n, held: 0n, ...defaultPolicy };
      return { account: a.account, currency: a.currency, ...rowColumns(after) };
    }),
    changed: [...plan.changedAccounts.values()]
      .filter((a) => !openedIds.has(a.account))
      .map((a) => ({ account: a.account, ...rowColumns(a) })),
    created: plan.createdHolds.map((h) => {
      const closed = closedById.get(h.hold);
      return {
        hold: h.hold,
        account: h.account,
        amount: h.amount,
        expires_at: h.expiresAt,
        operation_id: h.operationId,
        status: closed?.status ?? h.status,
        captured: closed?.captured ?? 0n,
        captured_to: closed?.capturedTo ?? null,
        closed_by: closed?.operationId ?? null,
      };
    }),
    closed: plan.closedHolds
      .filter((c) => !createdIds.has(c.hold))
      .map((c) => ({
        hold: c.hold,
        status: c.status,
        captured: c.captured,
        captured_to: c.capturedTo,
        closed_by: c.operationId,
      })),
    entries: plan.entries.map((e) => ({
      operation_id: e.operationId,
      account: e.account,
      balance_delta: e.balanceDelta,
      held_delta: e.heldDelta,
      balance_after: e.balanceAfter,
      held_after: e.heldAfter,
      overdraft_limit: e.overdraftLimit,
      max_balance: e.maxBalance,
    })),
    reversed: [...plan.reversed].map(([of, r]) => ({ operation_id: of, total: r.total, reversed: r.amount })),
    expiries: plan.expiries.map((e) => ({ hold: e.hold, run_at: e.runAt.toISOString() })),
    conflicts: plan.conflicts.map((c) => ({
      id: c.id,
      type: c.type,
      request: c.request,
      job_id: c.jobId,
      notice: jsonText({ id: c.id, type: c.type, status: 'rejected', code: 'id_conflict', job_id: c.jobId }),
    })),
    results: plan.operations.map((o) => ({
      id: o.id,
      type: o.type,
      status: o.status,
      code: o.code,
      message: o.message,
      request: o.request,
      fingerprint: o.fingerprint,
      job_id: o.jobId,
      balances: jsonText(balancesToJson(o.balances)),
      reverses: o.reverses,
      accounts: o.accounts,
    })),
    notify,
  };
}

/** An account row's written columns: its money and its policy. */
function rowColumns(after: Omit<AccountAfter, 'account'>) {
  return {
    balance: after.balance,
    held: after.held,
    overdraft_limit: after.overdraftLimit,
    max_balance: after.maxBalance,
    status: after.status,
  };
}

/**
 * A parameter of the writes statement whose value each batch gives: the statement is built and
 * compiled once with these in its parameter list, and each batch's values replace them (see
 * applyBatch), so its text never changes and each connection prepares it once.
 */
export class BatchParameter {
  readonly valueIn: (values: WriteValues) => unknown;
  constructor(valueIn: (values: WriteValues) => unknown) {
    this.valueIn = valueIn;
  }
}

/** Whether this batch notifies (see WriteValues). */
const notifies = sql<boolean>`${new BatchParameter((values) => values.notify)}`;

/** How many rows a list has this batch. */
function rowCount(list: ListName): RawBuilder<number> {
  return sql<number>`${new BatchParameter((values) => values[list].length)}`;
}

/**
 * A list's rows, from one array parameter per column (each a jsonList: see serverArray), as the
 * table `v` with the declared column names (and `n`, the row's place, for an ordered list).
 */
function rowsOf<L extends ListName>(list: L) {
  const { columns, ...declaration } = rowLists[list] as RowList<keyof DB>;
  const types: ExtraColumns = { ...columns, ...declaration.extra };
  const names = Object.keys(types);
  const arrays = names.map((name) =>
    serverArray(
      new BatchParameter((values) =>
        jsonList((values[list] as { [column: string]: unknown }[]).map((row) => row[name])),
      ),
      types[name]!,
    ),
  );
  const numbered = declaration.ordered ? [...names, 'n'] : names;
  return sql<
    RowOf<RowLists[L]> & { n: bigint }
  >`unnest(${sql.join(arrays)})${declaration.ordered ? sql` with ordinality` : sql``}`.as<'v'>(
    sql`v(${sql.join(numbered.map((name) => sql.id(name)))})`,
  );
}

/** `v.<column>` for each of a list's table columns: what an insert takes from its rows. */
function columnsOf(list: ListName): string[] {
  return Object.keys(rowLists[list].columns);
}

/** The CTEs that write the ledger, which the seq lock waits for (see writeStatement). */
const ledgerWrites = [
  'opened',
  'rebalanced',
  'new_holds',
  'closed_holds',
  'new_entries',
  'reversal_totals',
  'new_conflicts',
] as const;

/**
 * Every write of a batch in ONE statement of data-modifying CTEs. Its text is the same for every
 * batch: it is built and compiled once, and each batch fills its parameters from writeValues
 * (building it per batch cost more than the rest of the batch's client work together). PostgreSQL
 * runs sibling CTEs in no defined order and all of them see the statement's snapshot, so:
 * - an account or hold created by this batch is inserted with its final state (a sibling UPDATE
 *   could not see it); only rows that existed before are updated;
 * - the seq lock is taken after every ledger write: its condition reads each write's row count,
 *   which PostgreSQL can only give once that write has run. The result rows come after the seq lock
 *   (they are gated on its row): the lock is held from there to commit, so seqs are handed out in
 *   commit order and its hold time is the result insert and the commit;
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
  const insertRows = <L extends ListName>(list: L) =>
    db.selectFrom(rowsOf(list)).select(columnsOf(list).map((column) => `v.${column}`) as never);
  const conflictRows = rowsOf('conflicts');
  const writesDone = sql.join(
    ledgerWrites.map((write) => sql`(select count(*) from ${sql.table(write)})`),
    sql` + `,
  );

  return (
    db
      .with('opened', (qc) =>
        qc
          .insertInto(rowLists.opened.table)
          .columns(columnsOf('opened') as never)
          .expression(insertRows('opened'))
          .returning('account'),
      )
      // The limit tells the planner how few rows come (it guesses 100 for a function): index
      // lookups, not a hash join over the whole accounts table.
      .with('rebalanced', (qc) =>
        qc
          .updateTable('billing.accounts as a')
          .from(qc.selectFrom(rowsOf('changed')).selectAll().limit(rowCount('changed')).as('c'))
          .set((eb) => ({
            balance: eb.ref('c.balance'),
            held: eb.ref('c.held'),
            overdraft_limit: eb.ref('c.overdraft_limit'),
            max_balance: eb.ref('c.max_balance'),
            status: eb.ref('c.status'),
            updated_at: sql<Date>`now()`,
          }))
          .whereRef('a.account', '=', 'c.account')
          .returning('a.account'),
      )
      // A hold closed in the batch that created it is inserted closed, with its closing time.
      .with('new_holds', (qc) =>
        qc
          .insertInto(rowLists.created.table)
          .columns([...columnsOf('created'), 'closed_at'] as never)
          .expression(
            qc.selectFrom(rowsOf('created')).select((eb) => [
              ...(columnsOf('created').map((column) => `v.${column}`) as never[]),
              eb
                .case()
                .when('v.closed_by', 'is not', null)
                .then(sql<Date>`now()`)
                .else(null)
                .end()
                .as('closed_at'),
            ]) as never,
          )
          .returning('hold'),
      )
      .with('closed_holds', (qc) =>
        qc
          .updateTable('billing.holds as h')
          .from(qc.selectFrom(rowsOf('closed')).selectAll().limit(rowCount('closed')).as('c'))
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
          .insertInto(rowLists.entries.table)
          .columns(columnsOf('entries') as never)
          .expression(insertRows('entries').orderBy(sql.ref('v.n')))
          .returning('id'),
      )
      // A running total per reversed command, added to under the lock of the command's id; its
      // CHECK (reversed <= total) refuses any write that would put back more than was moved.
      .with('reversal_totals', (qc) =>
        qc
          .insertInto(rowLists.reversed.table)
          .columns(columnsOf('reversed') as never)
          .expression(insertRows('reversed'))
          .onConflict((oc) =>
            oc.column('operation_id').doUpdateSet((eb) => ({
              reversed: eb('billing.reversal_totals.reversed', '+', eb.ref('excluded.reversed')),
            })),
          )
          .returning('operation_id'),
      )
      .with('new_conflicts', (qc) =>
        qc
          .insertInto(rowLists.conflicts.table)
          .columns(columnsOf('conflicts') as never)
          .expression(insertRows('conflicts'))
          .returning('conflict_id'),
      )
      // An id conflict writes no result row; its notification is its own (small) payload.
      .with('conflicts_notified', (qc) =>
        qc
          .selectFrom(conflictRows)
          .select(sql<string>`pg_notify(${resultsChannel}, v.notice)`.as('sent'))
          .where(notifies),
      )
      // run_at is judged by the database clock; job_key keeps one expiry job per hold. Every
      // worker's expiry sweeper expires a hold as it falls due and deletes its job: the job is the
      // fallback, due expiryJobLagSeconds later, so that it does not fill the local queues with
      // expiries the sweeper is applying. A higher priority (lower number) puts it ahead of a
      // backlog of commands (docs/guarantees.md: within 5 s).
      .with('expiries', (qc) =>
        qc
          .selectFrom(rowsOf('expiries'))
          .select(
            sql<string>`graphile_worker.add_job(${holdExpiry.task}, json_build_object('hold', v.hold),
        run_at => v.run_at + make_interval(secs => ${expiryJobLagSeconds}), job_key => ${holdExpiry.idPrefix} || v.hold,
        max_attempts => ${25}, priority => ${-10})`.as('job'),
          )
          .where(notifies),
      )
      .with('seq_locked', (qc) =>
        qc
          .selectFrom('billing.result_seq_lock')
          .select('only_row')
          .where(sql<boolean>`${rowCount('results')} > 0 and ${writesDone} >= 0`)
          .forUpdate(),
      )
      .with('results', (qc) =>
        qc
          .insertInto(rowLists.results.table)
          .columns(columnsOf('results') as never)
          .expression(
            insertRows('results')
              .where(({ exists, selectFrom }) => exists(selectFrom('seq_locked' as never).select('only_row' as never)))
              .orderBy(sql.ref('v.n')),
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
          .having(({ fn, eb }) => eb.and([eb(fn.countAll(), '>', eb.val(0)), notifies])),
      )
      // One driving row that counts the side effects above, so that they are read (and so run) even when no
      // result is written; applyBatch checks the expiries' count.
      .with('side_effect_counts', (qc) =>
        qc.selectNoFrom(({ selectFrom, fn }) => [
          selectFrom('expiries').select(fn.countAll<bigint>().as('n')).as('expiries'),
          selectFrom('conflicts_notified').select(fn.countAll<bigint>().as('n')).as('conflict_notices'),
          selectFrom('notified').select(fn.countAll<bigint>().as('n')).as('notices'),
        ]),
      )
      .selectFrom('side_effect_counts')
      .leftJoin('results', (join) => join.onTrue())
      .select([
        'results.id',
        'results.seq',
        'side_effect_counts.expiries',
        'side_effect_counts.conflict_notices',
        'side_effect_counts.notices',
      ])
  );
}
