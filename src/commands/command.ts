// Every command, from its declaration: the lists, types and dispatch that the parser, the batch,
// the client, the CLI and the metrics read. A new command is a module of its own and a line here.
import type { z } from 'zod';
import { taskPrefix } from './contract.ts';
import type { CommandDeclaration, Locks } from './declare.ts';
import type { Decision, LedgerView } from './decision.ts';
import { capture } from './capture.ts';
import { closeAccount } from './close_account.ts';
import { credit } from './credit.ts';
import { debit } from './debit.ts';
import { holdExpiry } from './expire_hold.ts';
import { freeze, unfreeze } from './freeze.ts';
import { hold } from './hold.ts';
import { openAccount } from './open_account.ts';
import { release } from './release.ts';
import { reverse } from './reverse.ts';
import { transaction } from './transaction.ts';
import { setLimits } from './set_limits.ts';
import { transfer } from './transfer.ts';

export type { Metadata } from './declare.ts';

/** The commands a client sends, in the order the docs and the CLI list them. */
export const clientCommands = [
  openAccount,
  credit,
  debit,
  transfer,
  hold,
  capture,
  release,
  transaction,
  reverse,
  setLimits,
  freeze,
  unfreeze,
  closeAccount,
] as const;

type ClientDeclaration = (typeof clientCommands)[number];
export type CommandType = ClientDeclaration['type'];
/** The client's commands by type. */
export const clientCommandOf = Object.fromEntries(clientCommands.map((d) => [d.type, d])) as {
  [T in CommandType]: Extract<ClientDeclaration, { type: T }>;
};

/** Commands a client sends (graphile-worker tasks `billing/<type>`, billing.submit's command_type). */
export const commandTypes = clientCommands.map((d) => d.type) as readonly CommandType[];

/** The commands that move no money when applied: they write a result and no journal entry. */
export const typesThatMoveNoMoney: readonly CommandType[] = [
  openAccount.type,
  setLimits.type,
  freeze.type,
  unfreeze.type,
  closeAccount.type,
];

/** Every command the worker runs: the client's, and the service's own hold expiry. */
export const declarations = [...clientCommands, holdExpiry] as const;
type Declaration = (typeof declarations)[number];

/** billing.operations.type: what a client sends, plus the service's own hold expiry. */
export type OperationType = Declaration['type'];
export const operationTypes = declarations.map((d) => d.type) as readonly OperationType[];

/** A graphile-worker task name without the `billing/` prefix, e.g. `credit` or `expire_hold`. */
export type TaskId = Declaration['task'];
/** Every graphile-worker task pg-billing runs. */
export const taskNames = declarations.map((d) => `${taskPrefix}${d.task}`);

export type Command = ReturnType<Declaration['build']>;
export type CommandOf<T extends OperationType> = Extract<Command, { type: T }>;

/** A declaration whatever its command, for code that hands it a command of its own type. */
type AnyDeclaration = CommandDeclaration<OperationType, TaskId, z.ZodType, Command>;

const byType = new Map<string, AnyDeclaration>(declarations.map((d) => [d.type, d]));
const byTask = new Map<string, AnyDeclaration>(declarations.map((d) => [d.task, d]));

/** The declaration of a command's type. */
export function declarationOf(type: OperationType): AnyDeclaration {
  return byType.get(type)!;
}

/** The declaration of a task (`credit`, `expire_hold`), or undefined for a task that is not ours. */
export function declarationOfTask(task: string): AnyDeclaration | undefined {
  return byTask.get(task);
}

/**
 * The rules, with no I/O: given the locked rows, decide one command. Each command's checks run in
 * the order its declaration lists its codes, so the same command against the same rows always gets
 * the same code.
 */
export function decide(command: Command, view: LedgerView): Decision {
  return declarationOf(command.type).decide(command, view);
}

/** The rows a command names, which the batch locks and reads. */
export function locksOf(command: Command): Locks {
  return declarationOf(command.type).locks(command);
}
