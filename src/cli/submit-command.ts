import { randomUUID } from 'node:crypto';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { ResultTimeoutError } from '../client/errors.ts';
import type { CommandInputs } from '../client/types.ts';
import type { CommandType } from '../commands/command.ts';
import type { Metadata } from '../commands/command.ts';
import { CliError, findDatabase, loadCliConfig } from './context.ts';
import { exitCodes } from './exit-codes.ts';
import { formatResult, resultJson } from './output.ts';

export interface SubmitOptions {
  id?: string;
  metadata?: Metadata;
  json?: boolean;
  timeout: number;
}

export const defaultTimeoutMs = 15_000;

export function parseAmount(value: string): bigint {
  if (!/^[0-9]+$/.test(value))
    throw new InvalidArgumentError('a whole number of minor units (cents), digits only, like 111');
  return BigInt(value);
}

export function parseWhole(value: string): number {
  if (!/^[0-9]+$/.test(value)) throw new InvalidArgumentError('expected a whole number (digits only)');
  return Number(value);
}

/** A count of things to show: a whole number of 1 or more. */
export function parseCount(value: string): number {
  if (!/^[0-9]+$/.test(value) || Number(value) < 1)
    throw new InvalidArgumentError('expected a whole number of 1 or more');
  return Number(value);
}

function parseMetadata(value: string): Metadata {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new InvalidArgumentError('JSON, e.g. \'{"order":"42"}\'');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new InvalidArgumentError('a JSON object');
  return parsed as Metadata;
}

/** The options every command subcommand shares. */
export function withSubmitOptions(command: Command): Command {
  return command
    .option('--id <id>', 'command id and idempotency key (default: a random one); the same id and payload apply once')
    .option('--metadata <json>', 'JSON object stored with the result (at most 4 KiB)', parseMetadata)
    .option('--json', 'print the result as one JSON line (amounts as strings)')
    .addOption(
      new Option('--timeout <ms>', 'how long to wait for the result').argParser(parseWhole).default(defaultTimeoutMs),
    );
}

/**
 * Enqueues one command, waits for its result and prints it. Exit code: 0 applied, 2 rejected,
 * 1 no result in time (the command stays enqueued and may still apply: the message says so, and
 * how to look it up without sending it again). A result that was stored before this call sent the
 * command (the same id and payload, sent earlier) is printed as a replay.
 */
export async function submitAndPrint<T extends CommandType>(
  type: T,
  input: CommandInputs[T],
  options: SubmitOptions,
): Promise<number> {
  const config = loadCliConfig();
  const { url } = await findDatabase(config);
  const { createBillingClient } = await import('../client/client.ts');
  const client = createBillingClient({ connectionString: url, timeoutMs: options.timeout });
  const id = options.id ?? randomUUID();
  try {
    const full = { ...input, id, ...(options.metadata ? { metadata: options.metadata } : {}) };
    const result = await client.submit(type, full);
    if (options.json) console.log(resultJson(result));
    else
      console.log(
        `${formatResult(result)}${result.replayed ? `  (replayed: the result stored ${result.created_at.toISOString()} for this id; nothing applied again)` : ''}`,
      );
    return result.status === 'applied' ? exitCodes.ok : exitCodes.rejected;
  } catch (error) {
    if (error instanceof ResultTimeoutError) {
      throw new CliError(
        `no result for command ${error.commandId} (job ${error.jobId}) after ${options.timeout} ms: it is enqueued and ` +
          `may still be applied later (is a worker running?). Look its result up, without sending it again: billing result ${error.commandId}`,
        exitCodes.error,
        { id: error.commandId, job_id: String(error.jobId) },
      );
    }
    if (error instanceof TypeError) throw new CliError(error.message);
    throw error;
  } finally {
    await client.close();
  }
}
