import type { JobHelpers, Task } from 'graphile-worker';
import type { TaskId } from '../commands/command.ts';
import { parseCommand } from '../commands/parse.ts';
import type { AppliedOutcome } from '../ledger/apply.ts';
import { isTransientError } from '../db/errors.ts';
import type { Logger } from '../logger.ts';
import type { CommandBatcher } from './batcher.ts';
import type { ByteBudget } from './byte-budget.ts';
import type { Metrics } from './metrics.ts';

/** What a command task needs of its worker process. */
export interface CommandTaskDeps {
  batcher: Pick<CommandBatcher, 'submit'>;
  logger: Logger;
  metrics: Metrics;
  /** The currency of an account opened without one. */
  defaultCurrency: string;
  /** Bytes of payloads kept apart (sql/0028) that the process may hold loaded at once. */
  payloadBudget: Pick<ByteBudget, 'take'>;
}

/** A task file's default export: the task of one command type, made for one worker's dependencies. */
export type CommandTaskFactory = ((deps: CommandTaskDeps) => Task) & {
  /** The command's task, without the `billing/` prefix: the loader checks it against the file name. */
  readonly task: TaskId;
};

/**
 * What `tasks/billing/<type>.ts` default-exports: `export default commandTaskFactory('<type>')`.
 * The worker imports every file of that folder and calls its factory with its own batcher, logger
 * and metrics (src/worker/task-folder.ts), so the task takes its dependencies as arguments, as
 * graphile-worker's own `makeAddJob(options, withPgClient)` does: graphile-worker would call a
 * task file's plain export with the payload and its helpers only, leaving a module-level variable
 * as the only way to the process's batcher, which two workers in one process (the tests) share.
 *
 * A graphile-worker runner pointed at the folder itself would call the factory as the task, with a
 * payload and helpers: the job would complete with nothing applied and the command would be lost.
 * The factory throws instead, so the job fails (and is retried) and the error says what to run.
 */
export function commandTaskFactory(task: TaskId): CommandTaskFactory {
  const factory = (deps: CommandTaskDeps, ...runAsTask: unknown[]): Task => {
    if (runAsTask.length > 0)
      throw new Error(
        `tasks/billing/${task}.ts exports a factory of the task, not the task: run the jobs with \`billing worker\``,
      );
    return makeCommandTask(task, deps);
  };
  return Object.assign(factory, { task });
}

/**
 * The task of one command type: parse the payload, hand it to this process's batcher, wait for the
 * commit. A rejection is a result, so the job completes; only a fault throws, and graphile-worker
 * retries the job (the command id makes the retry safe).
 *
 * An array payload is a graphile-worker batch job: each element is a command of its own, and the
 * task returns one promise per element so that only failed elements are retried.
 *
 * A payload over 4 KiB is kept apart from the job row (sql/0028_large_payloads_apart.sql): the
 * task loads it by its job's id, within the process's payload budget, which it gives back once
 * every command of the job has its outcome.
 */
export function makeCommandTask(task: TaskId, deps: CommandTaskDeps): Task {
  return async (payload, helpers) => {
    const apartBytes = payloadApartBytes(payload);
    let release: (() => void) | undefined;
    let run: Promise<void> | Promise<void>[];
    if (apartBytes === undefined) {
      run = runPayload(deps, task, payload, helpers);
    } else {
      release = await deps.payloadBudget.take(apartBytes);
      try {
        run = runPayload(deps, task, await loadPayloadApart(helpers, payload), helpers);
      } catch (error) {
        release();
        throw error;
      }
      void Promise.allSettled(Array.isArray(run) ? run : [run]).then(release);
    }
    if (Array.isArray(run)) return run;
    await run;
  };
}

function runPayload(
  deps: CommandTaskDeps,
  task: TaskId,
  payload: unknown,
  helpers: JobHelpers,
): Promise<void> | Promise<void>[] {
  if (Array.isArray(payload)) {
    return payload.map((element, index) => runCommand(deps, task, element, helpers, null, index));
  }
  return runCommand(deps, task, payload, helpers, `job:${helpers.job.id}`);
}

const apartMarker = 'billing:payload_apart';

/** The marker's byte count when `payload` is the marker of a payload kept apart, else undefined. */
function payloadApartBytes(payload: unknown): number | undefined {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return undefined;
  const keys = Object.keys(payload);
  if (keys.length !== 1 || keys[0] !== apartMarker) return undefined;
  // Numbers arrive as JSON.rawJSON objects (src/commands/json-text.ts). The marker sizes the budget
  // taken, nothing else, and ByteBudget bounds it.
  const value = (payload as Record<string, unknown>)[apartMarker];
  const bytes = Number(typeof value === 'object' && value !== null && 'rawJSON' in value ? value.rawJSON : value);
  return Number.isFinite(bytes) ? bytes : Infinity;
}

/**
 * The payload kept apart for this job, read on graphile-worker's pool (whose json parser judges
 * its size and depth before parsing, src/worker/queue-payload-parser.ts). Looked up by the job's own id
 * only: without a row (a client wrote the marker itself) the marker is the payload, refused as
 * invalid_command.
 */
async function loadPayloadApart(helpers: JobHelpers, marker: unknown): Promise<unknown> {
  const { rows } = await helpers.withPgClient((client) =>
    client.query<{ payload: unknown }>('select payload from billing.job_payloads where job_id = $1', [helpers.job.id]),
  );
  return rows.length > 0 ? rows[0]!.payload : marker;
}

async function runCommand(
  deps: CommandTaskDeps,
  task: TaskId,
  payload: unknown,
  helpers: JobHelpers,
  defaultId: string | null,
  index = 0,
): Promise<void> {
  const job = helpers.job;
  const parsed = parseCommand({
    task,
    payload,
    // A batch job's elements are renumbered when graphile-worker retries the failed ones, so an
    // element without an id has no stable default: it is refused (see parseCommand).
    // The refusal of an element without an id is recorded under its position in this attempt.
    defaultId: defaultId ?? `job:${job.id}:${index}:unidentified`,
    defaultCurrency: deps.defaultCurrency,
    requireId: defaultId === null,
  });
  if (job.attempts > 1) deps.metrics.retries.inc({ task: job.task_identifier });
  // A child logger per command cost a measurable share of the worker's CPU (bench/LOG.md):
  // the fields go on each line instead, and most commands log nothing above debug.
  const commandFields = { command_id: parsed.ok ? parsed.command.id : parsed.id, job_id: job.id };
  let outcome: AppliedOutcome;
  try {
    outcome = await deps.batcher.submit({ parsed, jobId: BigInt(job.id) }, job.priority);
  } catch (error) {
    const transient = isTransientError(error);
    const level = transient ? 'warn' : 'error';
    deps.logger[level](
      { ...commandFields, err: error, attempt: job.attempts, transient },
      transient ? 'command failed, will retry' : 'command failed with an unexpected error, will retry',
    );
    throw error;
  }
  report(outcome, job, deps, commandFields);
}

function report(
  outcome: AppliedOutcome,
  job: JobHelpers['job'],
  { logger: log, metrics }: CommandTaskDeps,
  commandFields: { command_id: string; job_id: string },
): void {
  switch (outcome.kind) {
    case 'recorded': {
      const { result } = outcome;
      metrics.commands.inc({ type: result.type, code: result.code });
      metrics.latency.observe({ type: result.type }, (Date.now() - new Date(job.created_at).getTime()) / 1000);
      // Every result is a row of billing.operations and counted in billing_commands_total; a line
      // each at info cost about a tenth of the throughput, so it is there at debug.
      if (log.isLevelEnabled('debug'))
        log.debug(
          { ...commandFields, type: result.type, status: result.status, code: result.code, seq: String(outcome.seq) },
          result.message ?? 'applied',
        );
      return;
    }
    case 'replayed':
      log.info(
        { ...commandFields, type: outcome.result.type, code: outcome.result.code },
        'repeated command: the first result stands',
      );
      return;
    case 'conflict':
      metrics.commands.inc({ type: outcome.type, code: 'id_conflict' });
      metrics.idConflicts.inc({ type: outcome.type });
      log.warn({ ...commandFields, type: outcome.type, code: 'id_conflict' }, outcome.message);
      return;
    case 'skipped':
      log.debug({ ...commandFields, reason: outcome.reason }, 'nothing to do');
      return;
  }
}
