import type { z } from 'zod';
import type { RejectionCode } from './contract.ts';
import type { Decision, LedgerView } from './decision.ts';

export type Metadata = { [key: string]: unknown };

/** What every command carries. */
export interface CommandBase {
  /** Command id and idempotency key (1 to 128 characters). */
  id: string;
  metadata?: Metadata;
}

/** The rows a command names, whose lock slots the batch takes before it reads them. */
export interface Locks {
  accounts: readonly string[];
  hold?: string;
  /**
   * An earlier command whose accounts the command moves money on (a reversal names only that
   * command): the batch reads its journal before it locks, and locks its id and its accounts.
   */
  operation?: string;
}

/** A positional argument of the command's CLI subcommand, named by the payload field it fills. */
export interface CliArgument<Field extends string> {
  field: Field;
  help: string;
  optional?: boolean;
}

/** An option of the command's CLI subcommand (commander's flags), and the payload field it fills. */
export interface CliOption<Field extends string> {
  flags: string;
  field: Field;
  help: string;
}

export interface CliDeclaration<Field extends string> {
  /** The subcommand, e.g. `open-account`. */
  name: string;
  summary: string;
  description: string;
  arguments: readonly CliArgument<Field>[];
  options: readonly CliOption<Field>[];
  examples: readonly string[];
}

/**
 * A command, whole: everything the parser, the batch, the client, the CLI, the metrics, the docs
 * and the contract test need to know of it. Each command is one module that declares one of these.
 */
export interface CommandDeclaration<
  Type extends string,
  Task extends string,
  Schema extends z.ZodType,
  C extends CommandBase & { type: Type },
> {
  /** billing.operations.type. */
  type: Type;
  /** The graphile-worker task, without the `billing/` prefix. */
  task: Task;
  /** The job payload, with the field names of the SQL interface. */
  schema: Schema;
  /** The command from its parsed payload; `base` is the id and metadata the parser settled. */
  build(payload: z.output<Schema>, base: CommandBase, defaults: { currency: string }): C;
  /** Every rejection `decide` can answer besides invalid_command, in the order it checks them. */
  codes: readonly RejectionCode[];
  /** The accounts and the hold the command names: the batch locks them (lock-slots.ts). */
  locks(command: C): Locks;
  /** The rule, with no I/O: given the locked rows, decide the command. */
  decide(command: C, view: LedgerView): Decision;
}

/** A command a client sends: its type is its task, and the CLI has a subcommand for it. */
export interface ClientCommandDeclaration<
  Type extends string,
  Schema extends z.ZodObject,
  C extends CommandBase & { type: Type },
> extends CommandDeclaration<Type, Type, Schema, C> {
  cli: CliDeclaration<Extract<keyof z.output<Schema>, string>>;
}

/** Checks a client command's declaration and keeps its literal types. */
export function declareCommand<
  const Type extends string,
  Schema extends z.ZodObject,
  C extends CommandBase & { type: Type },
>(declaration: ClientCommandDeclaration<Type, Schema, C>): ClientCommandDeclaration<Type, Schema, C> {
  return declaration;
}
