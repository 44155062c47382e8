// The contract in src/commands/contract.ts against what the migrated database says: every closed
// list that both sides spell must be the same list, so a code, type or status added on one side
// only fails here rather than as a CHECK violation (or a silently accepted value) in production.
import t from 'tap';
import type pg from 'pg';
import { commandTypes, operationTypes } from '../src/commands/command.ts';
import {
  accountStatuses,
  defaultRoleNames,
  holdStatuses,
  lockSlotCount,
  maxInt64,
  resultCodes,
  resultStatuses,
} from '../src/commands/contract.ts';
import { createTestDatabase } from './helpers/database.ts';

const database = await createTestDatabase('contract');
t.teardown(() => database.drop());

/** The quoted values of a CHECK constraint such as `check (col in ('a', 'b'))`, sorted. */
async function checkValues(table: string, constraint: string): Promise<string[]> {
  const { rows } = await database.query<{ def: string }>(
    `select pg_get_constraintdef(oid) as def from pg_constraint where conrelid = $1::regclass and conname = $2`,
    [table, constraint],
  );
  if (!rows[0]) throw new Error(`no constraint ${constraint} on ${table}`);
  return [...rows[0].def.matchAll(/'([^']*)'::text/g)].map((m) => m[1]!).sort();
}
const sorted = (list: readonly string[]) => [...list].sort();

t.test('billing.operations.type: the operation types', async (t) => {
  t.same(await checkValues('billing.operations', 'type_known'), sorted(operationTypes));
});

t.test('billing.operations.code: every result code but id_conflict, which writes no row', async (t) => {
  t.same(await checkValues('billing.operations', 'code_known'), sorted(resultCodes.filter((c) => c !== 'id_conflict')));
});

t.test('billing.operations.status, billing.holds.status and billing.accounts.status', async (t) => {
  t.same(await checkValues('billing.operations', 'status_known'), sorted(resultStatuses));
  t.same(await checkValues('billing.holds', 'status_known'), sorted(holdStatuses));
  t.same(await checkValues('billing.accounts', 'status_known'), sorted(accountStatuses));
});

t.test('billing.submit takes exactly the command types', async (t) => {
  const {
    rows: [fn],
  } = await database.query<{ body: string }>(
    `select prosrc as body from pg_proc where oid = 'billing.submit(text, json)'::regprocedure`,
  );
  const list = /command_type not in\s*\(([^)]*)\)/.exec(fn!.body)?.[1];
  t.ok(list, 'billing.submit checks command_type against a list');
  t.same([...(list ?? '').matchAll(/'([^']*)'/g)].map((m) => m[1]!).sort(), sorted(commandTypes));
  // Its hint names them too, in the order the declarations list them (src/commands/command.ts).
  t.match(fn!.body, `hint = 'one of ${commandTypes.join(', ')}'`, 'the hint lists the declared command types');
  // And it really accepts each of them (a job is queued; no worker runs here).
  for (const type of commandTypes) {
    const queued = await database.query('select billing.submit($1, $2::json)', [type, '{}']).then(
      () => true,
      (e: pg.DatabaseError) => e.message,
    );
    t.equal(queued, true, `billing.submit accepts ${type}`);
  }
});

t.test('the four group roles exist under their default names', async (t) => {
  const { rows } = await database.query<{ rolname: string }>(
    'select rolname from pg_roles where rolname = any($1) order by rolname',
    [Object.values(defaultRoleNames)],
  );
  t.same(
    rows.map((r) => r.rolname),
    sorted(Object.values(defaultRoleNames)),
  );
});

t.test('billing.lock_slots holds slots 0 .. lockSlotCount - 1', async (t) => {
  const {
    rows: [slots],
  } = await database.query<{ n: number; low: number; high: number }>(
    'select count(*)::int as n, min(slot) as low, max(slot) as high from billing.lock_slots',
  );
  t.same(slots, { n: lockSlotCount, low: 0, high: lockSlotCount - 1 });
});

t.test('maxInt64 is the largest bigint', async (t) => {
  const {
    rows: [row],
  } = await database.query<{ v: bigint }>('select $1::bigint as v', [String(maxInt64)]);
  t.equal(row!.v, maxInt64);
  const beyond = await database.query('select $1::bigint', [String(maxInt64 + 1n)]).then(
    () => undefined,
    (e: pg.DatabaseError) => e.code,
  );
  t.equal(beyond, '22003', 'one more is out of range');
});
