import { z } from 'zod';
import { maxHoldSeconds, maxInt64 } from './contract.ts';
import { type CommandBase, declareCommand } from './declare.ts';
import { notFound, refuseClosed, refuseOutflow, reject } from './decision.ts';
import { accountId, amount, clientId, common, expiresAt, ttlSeconds } from './fields.ts';

export interface Hold extends CommandBase {
  type: 'hold';
  account: string;
  amount: bigint;
  /** Hold id; defaults to the command id. */
  hold: string;
  /** Absolute expiry, or a time to live resolved against the database clock when applied. */
  expiresAt?: Date;
  ttlSeconds?: number;
}

export const hold = declareCommand({
  type: 'hold',
  task: 'hold',
  schema: z
    .strictObject({
      ...common,
      account: accountId,
      amount,
      // A new hold's id is a client id too: it defaults to the command id, and may be derived from it.
      hold: clientId.optional(),
      expires_at: expiresAt.optional(),
      ttl_seconds: ttlSeconds.optional(),
    })
    .refine((p) => p.expires_at === undefined || p.ttl_seconds === undefined, {
      message: 'give expires_at or ttl_seconds, not both',
      path: ['ttl_seconds'],
    }),
  build: (p, base): Hold => ({
    ...base,
    type: 'hold',
    account: p.account,
    amount: p.amount,
    hold: p.hold ?? base.id,
    ...(p.expires_at === undefined ? {} : { expiresAt: new Date(p.expires_at) }),
    ...(p.ttl_seconds === undefined ? {} : { ttlSeconds: p.ttl_seconds }),
  }),
  codes: ['account_not_found', 'account_closed', 'hold_exists', 'account_frozen', 'insufficient_funds', 'overflow'],
  locks: (command) => ({ accounts: [command.account], hold: command.hold }),
  decide(command, view) {
    const account = view.accounts.get(command.account);
    if (!account) return notFound(command.account);
    const closed = refuseClosed(account);
    if (closed) return closed;
    if (view.holds.has(command.hold)) return reject('hold_exists', `hold ${command.hold} already exists`);
    const expiresAt = holdExpiry(command, view.now);
    if (expiresAt && expiresAt.getTime() <= view.now.getTime()) {
      return reject(
        'invalid_command',
        `expires_at: must be in the future (database time is ${view.now.toISOString()})`,
      );
    }
    if (expiresAt && expiresAt.getTime() - view.now.getTime() > maxHoldSeconds * 1000) {
      return reject('invalid_command', 'expires_at: must be at most 30 days ahead');
    }
    const refused = refuseOutflow(account, command.amount);
    if (refused) return refused;
    // Only an overdraft near 2^63 lets holds reserve more than the balance holds: held is a bigint too.
    if (account.held + command.amount > maxInt64)
      return reject('overflow', `held of ${command.account} would exceed ${maxInt64}`);
    return {
      kind: 'applied',
      postings: [{ account: command.account, balanceDelta: 0n, heldDelta: command.amount }],
      createHold: {
        hold: command.hold,
        account: command.account,
        amount: command.amount,
        status: 'active',
        expiresAt,
      },
    };
  },
  cli: {
    name: 'hold',
    summary: 'reserve money until capture, release or expiry',
    description:
      'Reserve money on an account (held += amount) until it is captured, released or expires. ' +
      'An expiry (--ttl or --expires-at) is at most 30 days ahead; the service releases the hold itself within 5 s of it.',
    arguments: [
      { field: 'account', help: 'account id' },
      { field: 'amount', help: 'minor units (cents), digits only' },
    ],
    options: [
      { flags: '--hold <id>', field: 'hold', help: 'hold id for capture/release (default: the command id)' },
      {
        flags: '--ttl <seconds>',
        field: 'ttl_seconds',
        help: 'release it by itself after this many seconds (at most 30 days: 2592000)',
      },
      {
        flags: '--expires-at <timestamp>',
        field: 'expires_at',
        help: 'release it by itself at this time: ISO 8601 with a zone, at most 30 days ahead',
      },
    ],
    examples: [
      'billing hold 1 50 --hold order-7',
      'billing hold 1 50 --hold order-8 --ttl 600',
      'billing hold 1 50 --hold order-9 --expires-at 2030-01-01T12:00:00Z',
    ],
  },
});

/** ttl_seconds counts from the database clock at the moment the hold is applied. */
function holdExpiry(command: Hold, now: Date): Date | null {
  if (command.expiresAt) return command.expiresAt;
  if (command.ttlSeconds !== undefined) return new Date(now.getTime() + command.ttlSeconds * 1000);
  return null;
}
