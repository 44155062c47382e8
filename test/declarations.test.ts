// The command declarations (src/commands/<type>.ts) against what is written of them elsewhere, with
// no database: the docs' table of commands and codes, and the closed list of result codes.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { clientCommands, type CommandOf, type CommandType, decide, declarations } from '../src/commands/command.ts';
import { maxInt64, resultCodes } from '../src/commands/contract.ts';
import {
  defaultPolicy,
  type AccountPolicy,
  type AccountState,
  type HoldState,
  type LedgerView,
} from '../src/commands/decision.ts';

const commandsDoc = readFileSync(new URL('../docs/commands.md', import.meta.url), 'utf8');

/** The rows of the docs' command table: the command and its codes besides `ok`, as written. */
function documentedCommands(): { command: string; codes: string[] }[] {
  const table = commandsDoc.slice(commandsDoc.indexOf('| command | payload | effect | result codes besides `ok` |'));
  const rows = table.split('\n').slice(2);
  const documented: { command: string; codes: string[] }[] = [];
  for (const row of rows) {
    if (!row.startsWith('|')) break;
    const cells = row.split('|').map((cell) => cell.trim());
    documented.push({ command: cells[1]!, codes: [...cells[4]!.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!) });
  }
  return documented;
}

t.test("docs/commands.md lists every command a client sends, with its codes in the declaration's order", async (t) => {
  t.same(
    documentedCommands(),
    clientCommands.map((declaration) => ({ command: declaration.type, codes: [...declaration.codes] })),
  );
});

t.test('each declaration lists distinct rejection codes of the closed list', async (t) => {
  for (const { type, codes } of declarations) {
    t.same([...new Set(codes)], codes, `${type}: no code twice`);
    for (const code of codes) {
      t.ok((resultCodes as readonly string[]).includes(code), `${type}: ${code} is a result code`);
      // These three any command can end with: they are not the rule's to list.
      t.notOk(['ok', 'invalid_command', 'id_conflict'].includes(code), `${type}: ${code} is a rule's code`);
    }
  }
});

t.test('declarations are one per type, one per task', async (t) => {
  t.equal(new Set(declarations.map((d) => d.type)).size, declarations.length);
  t.equal(new Set(declarations.map((d) => d.task)).size, declarations.length);
});

// One example a code, in the order each declaration checks them: the rule answers each, and the
// examples' codes are exactly the declared ones, so a code added to a rule and not to its
// declaration (or the other way round) fails here. Each example breaks the later checks too where
// the command allows it, so that it also shows which check comes first.
const now = new Date('2030-01-01T00:00:00Z');
const usd = (account: string, balance: bigint, held = 0n, policy: Partial<AccountPolicy> = {}): AccountState => ({
  account,
  currency: 'USD',
  balance,
  held,
  ...defaultPolicy,
  ...policy,
});
const eur = (account: string, balance: bigint, policy: Partial<AccountPolicy> = {}): AccountState => ({
  account,
  currency: 'EUR',
  balance,
  held: 0n,
  ...defaultPolicy,
  ...policy,
});
const closed = { status: 'closed' } as const;
const frozen = { status: 'frozen' } as const;
const activeHold = (hold: string, account: string, amount: bigint, expiresAt: Date | null = null): HoldState => ({
  hold,
  account,
  amount,
  status: 'active',
  expiresAt,
});
function viewOf(accounts: AccountState[], holds: HoldState[] = []): LedgerView {
  return {
    accounts: new Map(accounts.map((a) => [a.account, a])),
    holds: new Map(holds.map((h) => [h.hold, h])),
    now,
  };
}
const full = maxInt64;
const examples: { [T in CommandType]: { command: CommandOf<T>; view: LedgerView; code: string }[] } = {
  open_account: [
    {
      command: { id: 'x', type: 'open_account', account: 'a', currency: 'USD' },
      view: viewOf([usd('a', 0n, 0n, closed)]),
      code: 'account_closed',
    },
    {
      command: { id: 'x', type: 'open_account', account: 'a', currency: 'USD' },
      view: viewOf([usd('a', 0n)]),
      code: 'account_exists',
    },
  ],
  credit: [
    { command: { id: 'x', type: 'credit', account: 'a', amount: 1n }, view: viewOf([]), code: 'account_not_found' },
    {
      command: { id: 'x', type: 'credit', account: 'a', amount: 1n },
      view: viewOf([usd('a', 0n, 0n, { ...closed, maxBalance: 0n })]),
      code: 'account_closed',
    },
    {
      command: { id: 'x', type: 'credit', account: 'a', amount: 2n },
      view: viewOf([usd('a', full - 1n, 0n, { maxBalance: full - 1n })]),
      code: 'limit_exceeded',
    },
    {
      command: { id: 'x', type: 'credit', account: 'a', amount: 1n },
      view: viewOf([usd('a', full)]),
      code: 'overflow',
    },
  ],
  debit: [
    { command: { id: 'x', type: 'debit', account: 'a', amount: 1n }, view: viewOf([]), code: 'account_not_found' },
    {
      command: { id: 'x', type: 'debit', account: 'a', amount: 2n },
      view: viewOf([usd('a', 0n, 0n, closed)]),
      code: 'account_closed',
    },
    {
      command: { id: 'x', type: 'debit', account: 'a', amount: 2n },
      view: viewOf([usd('a', 1n, 0n, frozen)]),
      code: 'account_frozen',
    },
    {
      command: { id: 'x', type: 'debit', account: 'a', amount: 12n },
      view: viewOf([usd('a', 1n, 0n, { overdraftLimit: 10n })]),
      code: 'insufficient_funds',
    },
  ],
  transfer: [
    { command: { id: 'x', type: 'transfer', from: 'a', to: 'a', amount: 1n }, view: viewOf([]), code: 'same_account' },
    {
      command: { id: 'x', type: 'transfer', from: 'a', to: 'b', amount: 2n },
      view: viewOf([eur('b', full)]),
      code: 'account_not_found',
    },
    {
      command: { id: 'x', type: 'transfer', from: 'a', to: 'b', amount: 2n },
      view: viewOf([usd('a', 1n, 0n, frozen), eur('b', 0n, closed)]),
      code: 'account_closed',
    },
    {
      command: { id: 'x', type: 'transfer', from: 'a', to: 'b', amount: 2n },
      view: viewOf([usd('a', 1n, 0n, frozen), eur('b', full)]),
      code: 'currency_mismatch',
    },
    {
      command: { id: 'x', type: 'transfer', from: 'a', to: 'b', amount: 2n },
      view: viewOf([usd('a', 1n, 0n, frozen), usd('b', full)]),
      code: 'account_frozen',
    },
    {
      command: { id: 'x', type: 'transfer', from: 'a', to: 'b', amount: 2n },
      view: viewOf([usd('a', 1n), usd('b', full)]),
      code: 'insufficient_funds',
    },
    {
      command: { id: 'x', type: 'transfer', from: 'a', to: 'b', amount: 2n },
      view: viewOf([usd('a', 1n, 0n, { overdraftLimit: 1n }), usd('b', full - 1n, 0n, { maxBalance: full - 1n })]),
      code: 'limit_exceeded',
    },
    {
      command: { id: 'x', type: 'transfer', from: 'a', to: 'b', amount: 2n },
      view: viewOf([usd('a', 2n), usd('b', full)]),
      code: 'overflow',
    },
  ],
  hold: [
    {
      command: { id: 'x', type: 'hold', account: 'a', amount: 2n, hold: 'h' },
      view: viewOf([], [activeHold('h', 'b', 1n)]),
      code: 'account_not_found',
    },
    {
      command: { id: 'x', type: 'hold', account: 'a', amount: 2n, hold: 'h' },
      view: viewOf([usd('a', 0n, 0n, closed)], [activeHold('h', 'b', 1n)]),
      code: 'account_closed',
    },
    {
      command: { id: 'x', type: 'hold', account: 'a', amount: 2n, hold: 'h' },
      view: viewOf([usd('a', 1n, 0n, frozen)], [activeHold('h', 'a', 1n)]),
      code: 'hold_exists',
    },
    {
      command: { id: 'x', type: 'hold', account: 'a', amount: 2n, hold: 'h' },
      view: viewOf([usd('a', 1n, 0n, frozen)]),
      code: 'account_frozen',
    },
    {
      command: { id: 'x', type: 'hold', account: 'a', amount: 3n, hold: 'h' },
      view: viewOf([usd('a', 1n, 0n, { overdraftLimit: 1n })]),
      code: 'insufficient_funds',
    },
    {
      command: { id: 'x', type: 'hold', account: 'a', amount: 2n, hold: 'h' },
      view: viewOf([usd('a', full, full - 1n, { overdraftLimit: full })]),
      code: 'overflow',
    },
  ],
  capture: [
    { command: { id: 'x', type: 'capture', hold: 'h', amount: 5n, to: 'b' }, view: viewOf([]), code: 'hold_not_found' },
    {
      command: { id: 'x', type: 'capture', hold: 'h', amount: 5n, to: 'b' },
      view: viewOf([], [{ ...activeHold('h', 'a', 1n), status: 'released' }]),
      code: 'hold_closed',
    },
    {
      command: { id: 'x', type: 'capture', hold: 'h', amount: 5n, to: 'b' },
      view: viewOf([], [activeHold('h', 'a', 1n)]),
      code: 'amount_exceeds_hold',
    },
    {
      command: { id: 'x', type: 'capture', hold: 'h', amount: 1n, to: 'b' },
      view: viewOf([], [activeHold('h', 'a', 1n)]),
      code: 'account_not_found',
    },
    {
      command: { id: 'x', type: 'capture', hold: 'h', amount: 1n, to: 'b' },
      view: viewOf([usd('a', 1n, 1n, frozen), eur('b', 0n, closed)], [activeHold('h', 'a', 1n)]),
      code: 'account_closed',
    },
    {
      command: { id: 'x', type: 'capture', hold: 'h', amount: 1n, to: 'b' },
      view: viewOf([usd('a', 1n, 1n, frozen), eur('b', full)], [activeHold('h', 'a', 1n)]),
      code: 'currency_mismatch',
    },
    {
      command: { id: 'x', type: 'capture', hold: 'h', amount: 1n, to: 'b' },
      view: viewOf([usd('a', 1n, 1n, frozen), usd('b', full)], [activeHold('h', 'a', 1n)]),
      code: 'account_frozen',
    },
    {
      command: { id: 'x', type: 'capture', hold: 'h', amount: 1n, to: 'b' },
      view: viewOf([usd('a', 1n, 1n), usd('b', 5n, 0n, { maxBalance: 5n })], [activeHold('h', 'a', 1n)]),
      code: 'limit_exceeded',
    },
    {
      command: { id: 'x', type: 'capture', hold: 'h', amount: 1n, to: 'b' },
      view: viewOf([usd('a', 1n, 1n), usd('b', full)], [activeHold('h', 'a', 1n)]),
      code: 'overflow',
    },
  ],
  release: [
    { command: { id: 'x', type: 'release', hold: 'h' }, view: viewOf([]), code: 'hold_not_found' },
    {
      command: { id: 'x', type: 'release', hold: 'h' },
      view: viewOf([], [activeHold('h', 'a', 1n, new Date(now.getTime() - 1))]),
      code: 'hold_closed',
    },
  ],
  set_limits: [
    {
      command: { id: 'x', type: 'set_limits', account: 'a', overdraftLimit: 0n },
      view: viewOf([]),
      code: 'account_not_found',
    },
    {
      command: { id: 'x', type: 'set_limits', account: 'a', overdraftLimit: 5n },
      view: viewOf([usd('a', 0n, 0n, closed)]),
      code: 'account_closed',
    },
    {
      command: { id: 'x', type: 'set_limits', account: 'a', overdraftLimit: 4n },
      view: viewOf([usd('a', -5n, 0n, { overdraftLimit: 10n })]),
      code: 'limit_below_usage',
    },
    {
      command: { id: 'x', type: 'set_limits', account: 'a', maxBalance: 9n },
      view: viewOf([usd('a', 10n, 0n, frozen)]),
      code: 'limit_below_usage',
    },
  ],
  freeze: [
    { command: { id: 'x', type: 'freeze', account: 'a' }, view: viewOf([]), code: 'account_not_found' },
    {
      command: { id: 'x', type: 'freeze', account: 'a' },
      view: viewOf([usd('a', 0n, 0n, closed)]),
      code: 'account_closed',
    },
  ],
  unfreeze: [
    { command: { id: 'x', type: 'unfreeze', account: 'a' }, view: viewOf([]), code: 'account_not_found' },
    {
      command: { id: 'x', type: 'unfreeze', account: 'a' },
      view: viewOf([usd('a', 0n, 0n, closed)]),
      code: 'account_closed',
    },
  ],
  close_account: [
    { command: { id: 'x', type: 'close_account', account: 'a' }, view: viewOf([]), code: 'account_not_found' },
    {
      command: { id: 'x', type: 'close_account', account: 'a' },
      view: viewOf([usd('a', 0n, 0n, closed)]),
      code: 'account_closed',
    },
    {
      command: { id: 'x', type: 'close_account', account: 'a' },
      view: viewOf([usd('a', 0n, 1n, { overdraftLimit: 1n })]),
      code: 'account_not_empty',
    },
  ],
};

for (const declaration of clientCommands) {
  t.test(`${declaration.type}: one example a code, in the declared order`, async (t) => {
    const cases = examples[declaration.type];
    t.same(
      [...new Set(cases.map((c) => c.code))],
      [...declaration.codes],
      'the examples cover the declared codes, in order',
    );
    for (const { command, view, code } of cases) {
      const decision = decide(command, view);
      t.equal(decision.kind === 'rejected' ? decision.code : decision.kind, code, `${code}`);
    }
  });
}
