/**
 * A command's examples, one a code, in the order the command checks them: the tests in
 * test/commands/<task>.test.ts, one file per declaration, beside its module src/commands/<task>.ts.
 * No database: each example's payload goes through the real parser (as JSON text, as a job carries
 * it) and, when it parses, through the command's rule against the rows a batch would have locked.
 *
 * The order is the point. An example whose payload is invalid comes first (the parser answers
 * before any row is read), then one example for each declared code in the declaration's order,
 * then `ok`; each example also breaks the checks after its own where the command allows it, so it
 * shows which check comes first.
 */
import type { Test } from 'tap';
import { type declarations, decide } from '../../src/commands/command.ts';
import { maxInt64 } from '../../src/commands/contract.ts';
import {
  defaultPolicy,
  type AccountPolicy,
  type AccountState,
  type Decision,
  type HoldState,
  type LedgerView,
  type OperationState,
  type ReversalTotal,
} from '../../src/commands/decision.ts';
import { readPayloadJson } from '../../src/commands/json-text.ts';
import { parseCommand } from '../../src/commands/parse.ts';

/** The database clock of every example. */
export const now = new Date('2030-01-01T00:00:00Z');
export const full = maxInt64;

export const usd = (
  account: string,
  balance: bigint,
  held = 0n,
  policy: Partial<AccountPolicy> = {},
): AccountState => ({
  account,
  currency: 'USD',
  balance,
  held,
  ...defaultPolicy,
  ...policy,
});
export const eur = (account: string, balance: bigint, policy: Partial<AccountPolicy> = {}): AccountState => ({
  account,
  currency: 'EUR',
  balance,
  held: 0n,
  ...defaultPolicy,
  ...policy,
});
export const closed = { status: 'closed' } as const;
export const frozen = { status: 'frozen' } as const;
export const activeHold = (
  hold: string,
  account: string,
  amount: bigint,
  expiresAt: Date | null = null,
): HoldState => ({
  hold,
  account,
  amount,
  status: 'active',
  expiresAt,
});

/**
 * The locked rows, as a batch reads them; for a reversal, also the commands it names (their moves,
 * from the journal) and how much of each earlier reversals put back (billing.reversal_totals).
 */
export function rows(
  accounts: AccountState[] = [],
  holds: HoldState[] = [],
  operations: OperationState[] = [],
  reversals: Record<string, ReversalTotal> = {},
): LedgerView {
  return {
    accounts: new Map(accounts.map((a) => [a.account, a])),
    holds: new Map(holds.map((h) => [h.hold, h])),
    now,
    operations: new Map(operations.map((o) => [o.id, o])),
    reversals: new Map(Object.entries(reversals)),
  };
}

/** An applied command `id` of `type` that moved `moves` (balance changes, in journal order). */
export const applied = (
  id: string,
  type: string,
  moves: [account: string, balanceDelta: bigint][],
): OperationState => ({
  id,
  type,
  status: 'applied',
  moves: moves.map(([account, balanceDelta]) => ({ account, balanceDelta })),
});

export interface Example {
  /** The payload's JSON text, as a job carries it. */
  payload: string;
  /** The rows the batch locked for it (none for an example the parser refuses). */
  rows?: LedgerView;
  /** `invalid_command`, a declared code, `ok`, or `skipped` (the expiry's nothing to do). */
  code: string;
  /** For `ok` (and `skipped`): the decision, as the apply step gets it. */
  decision?: Decision;
}

type Declaration = (typeof declarations)[number];

/**
 * The examples of one command: their codes, in order, are invalid_command, the declared codes, and
 * ok (a hold's expiry checks may refuse with invalid_command in between; the service's own expiry
 * declares no code); each example gets its code from the parser and the rule.
 */
export function checkExamples(t: Test, declaration: Declaration, examples: Example[]): void {
  const codes = examples.map((e) => e.code);
  const ruleCodes = codes.filter((code) => !['invalid_command', 'ok', 'skipped'].includes(code));
  t.same(ruleCodes, [...declaration.codes], 'one example a declared code, in the declared order');
  if (declaration.type !== 'expire') {
    t.equal(codes[0], 'invalid_command', 'an invalid payload is answered first');
    t.equal(codes.at(-1), 'ok', 'the last example is applied');
  }
  for (const example of examples) {
    const parsed = parseCommand({
      task: declaration.task,
      payload: readPayloadJson(example.payload),
      defaultId: 'job:7',
      defaultCurrency: 'USD',
    });
    if (!parsed.ok) {
      t.equal('invalid_command', example.code, `${example.payload}: invalid_command (${parsed.message})`);
      continue;
    }
    const decision = decide(parsed.command, example.rows ?? rows());
    const code = decision.kind === 'rejected' ? decision.code : decision.kind === 'applied' ? 'ok' : 'skipped';
    t.equal(code, example.code, `${example.payload}: ${example.code}`);
    if (example.decision) t.same(decision, example.decision, `${example.payload}: what it does`);
  }
}
