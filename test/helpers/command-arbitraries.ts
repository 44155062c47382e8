import fc from 'fast-check';

/**
 * Random commands for the property tests: plan.property.test.ts (planBatch, no database) and
 * model.test.ts (a live worker). Few accounts and holds, so that commands collide; `z` is never
 * opened. Payloads are as a client sends them, checked against the reference model.
 */

export type Payload = Record<string, unknown>;
/** A task name without `billing/`; `expire_hold` is the service's own, never a client's. */
export type Task =
  | 'open_account'
  | 'credit'
  | 'debit'
  | 'transfer'
  | 'hold'
  | 'capture'
  | 'release'
  | 'transaction'
  | 'reverse'
  | 'set_limits'
  | 'freeze'
  | 'unfreeze'
  | 'close_account'
  | 'expire_hold';
/**
 * `holdRef` points a capture, release or expiry at the hold of an earlier hold command; `opRef`
 * points a reversal at a command id (an earlier one, the next one, or one never sent).
 */
export interface CommandSpec {
  task: Task;
  fields: Payload;
  holdRef?: number;
  opRef?: number;
  withoutId?: boolean;
}
export type Step =
  | { kind: 'new'; spec: CommandSpec }
  /** an earlier command again, the same payload (its keys in reverse order when `reorder`) */
  | { kind: 'repeat'; of: number; reorder: boolean }
  /** an earlier command's id with another payload */
  | { kind: 'reuse'; of: number; spec: CommandSpec };

export const openable = fc.constantFrom('a', 'b', 'c');
export const account = fc.constantFrom('a', 'b', 'c', 'a', 'b', 'c', 'z');
export const holdId = fc.constantFrom('h1', 'h2', 'h3');
export const amount = fc.oneof(
  { weight: 6, arbitrary: fc.bigInt({ min: 1n, max: 120n }).map(String) },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 120 }) },
  { weight: 1, arbitrary: fc.constantFrom('9223372036854775807', '9223372036854775000') },
);
/** Overdrafts and ceilings near the amounts above, 0 included, as strings and as JSON integers. */
export const limit = fc.oneof(
  fc.constantFrom('0', 0, '30', 80, '200', '1000'),
  fc.bigInt({ min: 0n, max: 1500n }).map(String),
);
const optional = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: undefined, freq: 2 });
const withoutUndefined = (fields: Payload): Payload =>
  Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
export const spec =
  (task: Task) =>
  (fields: Payload): CommandSpec => ({ task, fields: withoutUndefined(fields) });

/**
 * Valid commands, weighted so that holds meet captures and releases of the same hold id, more than
 * once. `expiry` gives a hold's expiry fields (`{}` for none); `more` adds kinds of command.
 */
export function validCommand(
  expiry: fc.Arbitrary<Payload>,
  more: fc.WeightedArbitrary<CommandSpec>[] = [],
): fc.Arbitrary<CommandSpec> {
  return fc.oneof(
    {
      weight: 1,
      arbitrary: fc
        .record({ account: openable, currency: fc.constantFrom(undefined, undefined, 'USD', 'EUR') })
        .map(spec('open_account')),
    },
    { weight: 3, arbitrary: fc.record({ account, amount }).map(spec('credit')) },
    { weight: 2, arbitrary: fc.record({ account, amount }).map(spec('debit')) },
    { weight: 3, arbitrary: fc.record({ from: account, to: account, amount }).map(spec('transfer')) },
    {
      weight: 4,
      arbitrary: fc
        .tuple(fc.record({ account, amount, hold: fc.option(holdId, { nil: undefined, freq: 4 }) }), expiry)
        .map(([fields, expiresIn]) => spec('hold')({ ...fields, ...expiresIn })),
    },
    {
      weight: 4,
      arbitrary: fc
        .tuple(
          fc.nat(),
          fc.record({ amount: optional(fc.bigInt({ min: 1n, max: 130n }).map(String)), to: optional(account) }),
        )
        .map(([holdRef, fields]) => ({ ...spec('capture')(fields), holdRef })),
    },
    { weight: 2, arbitrary: fc.nat().map((holdRef): CommandSpec => ({ task: 'release', fields: {}, holdRef })) },
    { weight: 1, arbitrary: fc.record({ hold: fc.constantFrom('h1', 'h9') }).map(spec('capture')) },
    {
      weight: 2,
      arbitrary: fc
        .record({
          account,
          overdraft_limit: optional(limit),
          max_balance: fc.option(fc.oneof(limit, fc.constant(null)), { nil: undefined, freq: 2 }),
        })
        .filter((f) => f.overdraft_limit !== undefined || f.max_balance !== undefined)
        .map(spec('set_limits')),
    },
    { weight: 2, arbitrary: fc.record({ account }).map(spec('freeze')) },
    { weight: 2, arbitrary: fc.record({ account }).map(spec('unfreeze')) },
    // Rarely: an account closes only when empty, and is gone for good.
    { weight: 1, arbitrary: fc.record({ account }).map(spec('close_account')) },
    ...more,
  );
}

const leg = fc.oneof(
  { weight: 4, arbitrary: fc.record({ from: account, to: account, amount }) },
  { weight: 1, arbitrary: fc.record({ to: account, amount }) },
  { weight: 1, arbitrary: fc.record({ from: account, amount }) },
);

/**
 * Transactions: random legs, and legs of which a later one spends what an earlier one brought in
 * (money in to x, then x to y; or y to x, then x on to z), which only the order makes possible.
 */
export const transactionCommand: fc.Arbitrary<CommandSpec> = fc.oneof(
  { weight: 2, arbitrary: fc.array(leg, { minLength: 1, maxLength: 4 }).map((legs) => spec('transaction')({ legs })) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(account, account, account, fc.bigInt({ min: 1n, max: 200n }).map(String), fc.boolean())
      .map(([x, y, z, n, fromOutside]) =>
        spec('transaction')({
          legs: fromOutside
            ? [
                { to: x, amount: n },
                { from: x, to: y, amount: n },
              ]
            : [
                { from: y, to: x, amount: n },
                { from: x, to: z, amount: n },
              ],
        }),
      ),
  },
);

/** Reversals, whole or of a part, of a command `opRef` picks. */
export const reverseCommand: fc.Arbitrary<CommandSpec> = fc
  .tuple(fc.nat(), optional(fc.bigInt({ min: 1n, max: 130n }).map(String)))
  .map(([opRef, part]) => ({ ...spec('reverse')({ amount: part }), opRef }));

/** Commands that are answered invalid_command whatever the ledger holds. */
export const invalidCommands: CommandSpec[] = [
  { task: 'credit', fields: { account: 'a', amount: '-1' } },
  { task: 'credit', fields: { account: 'a', amount: '1e3' } },
  { task: 'credit', fields: { account: 'a', amount: 0 } },
  { task: 'debit', fields: { account: 'a' } },
  { task: 'debit', fields: { account: 'a b', amount: '1' } },
  { task: 'transfer', fields: { from: 'a', to: 'b', amount: 1.5 } },
  { task: 'transfer', fields: { from: 'a', to: 'b', amount: '9223372036854775808' } },
  { task: 'hold', fields: { account: 'a', amount: ' 5' } },
  { task: 'hold', fields: { account: 'a', amount: '5', ttl_seconds: 0 } },
  { task: 'hold', fields: { account: 'a', amount: '5', ttl_seconds: 1.5 } },
  { task: 'hold', fields: { account: 'a', amount: '5', ttl_seconds: 30 * 24 * 60 * 60 + 1 } },
  { task: 'hold', fields: { account: 'a', amount: '5', expires_at: 'soon' } },
  { task: 'hold', fields: { account: 'a', amount: '5', expires_at: '2099-01-01T00:00:00Z', ttl_seconds: 5 } },
  { task: 'capture', fields: { hold: 'h1', amount: '0x10' } },
  { task: 'release', fields: { hold: 'h1', amount: '5' } },
  { task: 'open_account', fields: { account: 'a', currency: 'usd' } },
  { task: 'credit', fields: { account: 'a', amount: '5', metadata: 'note' } },
  { task: 'transaction', fields: { legs: [] } },
  { task: 'transaction', fields: { legs: [{ amount: '5' }] } },
  { task: 'transaction', fields: { legs: [{ from: 'a', to: 'b', amount: '5', hold: 'h1' }] } },
  { task: 'reverse', fields: { amount: '5' } },
  { task: 'reverse', fields: { of: 'c1', amount: '0' } },
  { task: 'set_limits', fields: { account: 'a' } },
  { task: 'set_limits', fields: { account: 'a', overdraft_limit: '-1' } },
  { task: 'set_limits', fields: { account: 'a', overdraft_limit: null } },
  { task: 'set_limits', fields: { account: 'a', max_balance: '1.5' } },
  { task: 'set_limits', fields: { account: 'a', max_balance: '00' } },
  { task: 'freeze', fields: { account: 'a', amount: '1' } },
  { task: 'close_account', fields: {} },
];

/** New commands, valid and not, repeats of earlier ones, and reuses of their ids. */
export function step(valid: fc.Arbitrary<CommandSpec>, invalid: fc.Arbitrary<CommandSpec>): fc.Arbitrary<Step> {
  return fc.oneof(
    { weight: 12, arbitrary: valid.map((s): Step => ({ kind: 'new', spec: s })) },
    { weight: 2, arbitrary: invalid.map((s): Step => ({ kind: 'new', spec: s })) },
    {
      weight: 2,
      arbitrary: fc.tuple(fc.nat(), fc.boolean()).map(([of, reorder]): Step => ({ kind: 'repeat', of, reorder })),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.nat(), fc.oneof(valid, invalid)).map(([of, s]): Step => ({ kind: 'reuse', of, spec: s })),
    },
  );
}

/** Every run starts with a, b and c open (c in a random currency) and some money on them. */
export const opening: fc.Arbitrary<Step[]> = fc
  .tuple(
    fc.constantFrom('USD', 'USD', 'EUR'),
    fc.array(fc.record({ account: openable, amount: fc.bigInt({ min: 100n, max: 1000n }).map(String) }), {
      minLength: 3,
      maxLength: 6,
    }),
  )
  .map(([currencyOfC, credits]) => [
    { kind: 'new', spec: { task: 'open_account', fields: { account: 'a' } } },
    { kind: 'new', spec: { task: 'open_account', fields: { account: 'b', currency: 'USD' } } },
    { kind: 'new', spec: { task: 'open_account', fields: { account: 'c', currency: currencyOfC } } },
    ...credits.map((fields): Step => ({ kind: 'new', spec: { task: 'credit', fields } })),
  ]);

/** The payload again, its keys in reverse order when `reorder`: the same command to the service. */
export function samePayload(payload: Payload, reorder: boolean): Payload {
  const entries = Object.entries(payload);
  return Object.fromEntries(reorder ? entries.reverse() : entries);
}

/** JSON that shows a bigint as `5n`. */
export const stringify = (value: unknown) =>
  JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
