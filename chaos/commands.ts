// The random command mix of the chaos run: every command type, few accounts (so that most commands
// contend for the same rows), amounts that drain accounts (so that insufficient_funds is common),
// holds that expire during the run, transactions over the hottest accounts in both directions,
// reversals of recent commands (often sent with them, racing their retries), account policies
// changing under the money moves (freezes racing debits, overdrafts and ceilings set and lowered),
// and some commands that must be refused.

export interface PlannedCommand {
  id: string;
  /** Task name without the `billing/` prefix. */
  type: string;
  payload: Record<string, unknown> & { id: string };
}

/** A small seeded PRNG (mulberry32), so a run's command mix can be repeated. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const foreignAccount = 'eur-0';

export function accountNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `acc-${i}`);
}

/** The commands that set the scene: the accounts, one in another currency, and their first money. */
export function openingCommands(accounts: string[], runTag: string): PlannedCommand[] {
  const opens = [...accounts, foreignAccount].map((account) => ({
    id: `${runTag}-open-${account}`,
    type: 'open_account',
    payload: { id: `${runTag}-open-${account}`, account, ...(account === foreignAccount ? { currency: 'EUR' } : {}) },
  }));
  const credits = [...accounts, foreignAccount].map((account) => ({
    id: `${runTag}-seed-${account}`,
    type: 'credit',
    payload: { id: `${runTag}-seed-${account}`, account, amount: '5000' },
  }));
  return [...opens, ...credits];
}

export class CommandMix {
  readonly #random: () => number;
  readonly #accounts: string[];
  readonly #prefix: string;
  readonly #recentHolds: string[] = [];
  /** Ids of recent money moves (and a few of other commands), which reversals name. */
  readonly #recentMoves: string[] = [];
  readonly #lateAccounts: string[] = [];
  #counter = 0;

  constructor(random: () => number, accounts: string[], prefix: string) {
    this.#random = random;
    this.#accounts = accounts;
    this.#prefix = prefix;
  }

  next(): PlannedCommand {
    const id = `${this.#prefix}-${this.#counter++}`;
    const r = this.#random();
    const command = (type: string, fields: Record<string, unknown>): PlannedCommand => ({
      id,
      type,
      payload: { id, ...fields },
    });
    const kind = this.#random();
    if (kind < 0.07) return this.#remember(command('transaction', { legs: this.#legs() }));
    if (kind < 0.13) {
      // A recent command, often one sent in this very batch or resent later by the producer (its
      // retry races the reversal); now and then one that does not exist or is no money move.
      const roll = this.#random();
      const of =
        roll < 0.05 || this.#recentMoves.length === 0
          ? `${this.#prefix}-${this.#counter + 1}`
          : roll < 0.08
            ? (this.#recentHolds.at(-1) ?? 'no-such-command')
            : this.#pick(this.#recentMoves.slice(-12));
      return command('reverse', { of, ...(this.#random() < 0.4 ? { amount: this.#amount(200) } : {}) });
    }
    if (r < 0.03) {
      // Mostly account_exists; now and then a new account that later commands may name.
      const account = this.#random() < 0.5 ? this.#account() : `late-${this.#prefix}-${this.#counter}`;
      if (account.startsWith('late-')) this.#lateAccounts.push(account);
      return command('open_account', { account });
    }
    if (r < 0.18)
      return this.#remember(command('credit', { account: this.#accountOrGhost(), amount: this.#amount(400) }));
    if (r < 0.33)
      return this.#remember(command('debit', { account: this.#accountOrGhost(), amount: this.#amount(500) }));
    if (r < 0.6) {
      const from = this.#accountOrGhost();
      const roll = this.#random();
      const to = roll < 0.03 ? from : roll < 0.06 ? foreignAccount : this.#account();
      return this.#remember(command('transfer', { from, to, amount: this.#amount(400) }));
    }
    if (r < 0.77) {
      const fields: Record<string, unknown> = { account: this.#accountOrGhost(), amount: this.#amount(300) };
      const expiry = this.#random();
      if (expiry < 0.35) fields.ttl_seconds = 1 + Math.floor(this.#random() * 4);
      else if (expiry < 0.4)
        fields.expires_at = new Date(Date.now() + 3000 + Math.floor(this.#random() * 3000)).toISOString();
      if (this.#random() < 0.03 && this.#recentHolds.length) fields.hold = this.#pick(this.#recentHolds);
      const holdId = String(fields.hold ?? id);
      if (!this.#recentHolds.includes(holdId)) this.#recentHolds.push(holdId);
      if (this.#recentHolds.length > 60) this.#recentHolds.shift();
      return command('hold', fields);
    }
    if (r < 0.91) {
      const fields: Record<string, unknown> = { hold: this.#holdOrGhost() };
      if (this.#random() < 0.5) fields.amount = this.#amount(320);
      const to = this.#random();
      if (to < 0.35) fields.to = this.#account();
      else if (to < 0.38) fields.to = foreignAccount;
      return this.#remember(command('capture', fields));
    }
    if (r < 0.955) return command('release', { hold: this.#holdOrGhost() });
    // Policies on the same few accounts as the moves: each lands between them in seq order.
    // Unfreezes outnumber freezes, so that an account is frozen about a quarter of the time.
    if (r < 0.97) {
      const fields: Record<string, unknown> = { account: this.#accountOrGhost() };
      const roll = this.#random();
      if (roll < 0.7) fields.overdraft_limit = this.#limit(600);
      if (roll >= 0.4) fields.max_balance = this.#random() < 0.3 ? null : this.#limit(15_000);
      return command('set_limits', fields);
    }
    if (r < 0.977) return command('freeze', { account: this.#accountOrGhost() });
    if (r < 0.997) return command('unfreeze', { account: this.#accountOrGhost() });
    // Mostly account_not_empty; an account opened late and still empty closes for good.
    return command('close_account', { account: this.#random() < 0.5 ? this.#account() : this.#lateAccount() });
  }

  #lateAccount(): string {
    return this.#lateAccounts.length ? this.#pick(this.#lateAccounts) : this.#account();
  }

  /** 0 to max minor units, 0 a fifth of the time; digits as a string mostly. */
  #limit(max: number): string | number {
    const value = this.#random() < 0.2 ? 0 : Math.floor(this.#random() * max);
    return this.#random() < 0.8 ? String(value) : value;
  }

  #remember(command: PlannedCommand): PlannedCommand {
    this.#recentMoves.push(command.id);
    if (this.#recentMoves.length > 60) this.#recentMoves.shift();
    return command;
  }

  /**
   * Two or three legs over the two hottest accounts (the first of the list) and one other, in
   * either direction: a payment and its fee, money in then on (a leg that spends what the one
   * before brought in), money out, now and then the foreign account or the same account twice.
   */
  #legs(): Record<string, unknown>[] {
    const [hot, warm] = [this.#accounts[0]!, this.#accounts[1] ?? this.#accounts[0]!];
    const [a, b] = this.#random() < 0.5 ? [hot, warm] : [warm, hot];
    const other = this.#account();
    const amount = this.#amount(300);
    const roll = this.#random();
    if (roll < 0.35)
      return [
        { from: a, to: b, amount },
        { from: b, to: other, amount: this.#amount(30) },
      ];
    if (roll < 0.65)
      return [
        { to: a, amount },
        { from: a, to: b, amount },
        { from: b, amount: this.#amount(300) },
      ];
    if (roll < 0.9)
      return [
        { from: b, to: a, amount },
        { from: a, amount: this.#amount(400) },
      ];
    if (roll < 0.95)
      return [
        { from: a, to: b, amount },
        { from: b, to: foreignAccount, amount },
      ];
    return [
      { from: a, to: b, amount },
      { from: other, to: other, amount },
    ];
  }

  #pick<T>(list: T[]): T {
    return list[Math.floor(this.#random() * list.length)]!;
  }

  #account(): string {
    return this.#pick(this.#accounts);
  }

  #accountOrGhost(): string {
    return this.#random() < 0.02 ? 'ghost' : this.#account();
  }

  #holdOrGhost(): string {
    return this.#random() < 0.05 || this.#recentHolds.length === 0
      ? `no-such-hold-${this.#counter}`
      : this.#pick(this.#recentHolds);
  }

  /** Digits as a string mostly, a JSON integer sometimes: both are valid amounts. */
  #amount(max: number): string | number {
    const value = 1 + Math.floor(this.#random() * max);
    return this.#random() < 0.8 ? String(value) : value;
  }
}
