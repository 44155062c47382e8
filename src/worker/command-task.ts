import type { JobHelpers, Task } from 'graphile-worker';
import type { TaskId } from '../commands/command.ts';
import { parseCommand } from '../commands/parse.ts';
import type { AppliedOutcome } from '../ledger/apply.ts';
import { isTransientError } from '../db/errors.ts';
import { getRuntime } from './runtime.ts';

/**
 * The graphile-worker task for one command type: parse the payload, hand it to this process's
 * batcher, wait for the commit. A rejection is a result, so the job completes; only a fault throws,
 * and graphile-worker retries the job (the command id makes the retry safe).
 *
 * An array payload is a graphile-worker batch job: each element is a command of its own, and the
 * task returns one promise per element so that only failed elements are retried.
 *
 * A payload over 4 KiB is kept apart from the job row (sql/0028_large_payloads_apart.sql): the
 * task loads it by its job's id, within the process's payload budget, which it gives back once
 * every command of the job has its outcome.
 */
export function commandTask(task: TaskId): Task {
  return async (payload, helpers) => {
    const apartBytes = payloadApartBytes(payload);
    let release: (() => void) | undefined;
    let run: Promise<void> | Promise<void>[];
    if (apartBytes === undefined) {
      run = runPayload(task, payload, helpers);
    } else {
      release = await getRuntime().payloadBudget.take(apartBytes);
      try {
        run = runPayload(task, await loadPayloadApart(helpers, payload), helpers);
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

function runPayload(task: TaskId, payload: unknown, helpers: JobHelpers): Promise<void> | Promise<void>[] {
  if (Array.isArray(payload)) {
    return payload.map((element, index) => runCommand(task, element, helpers, null, index));
  }
  return runCommand(task, payload, helpers, `job:${helpers.job.id}`);
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
 * its size and depth before parsing, src/worker/queue-pool-types.ts). Looked up by the job's own id
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
  task: TaskId,
  payload: unknown,
  helpers: JobHelpers,
  defaultId: string | null,
  index = 0,
): Promise<void> {
  const runtime = getRuntime();
  const job = helpers.job;
  const parsed = parseCommand({
    task,
    payload,
    // A batch job's elements are renumbered when graphile-worker retries the failed ones, so an
    // element without an id has no stable default: it is refused (see parseCommand).
    // The refusal of an element without an id is recorded under its position in this attempt.
    defaultId: defaultId ?? `job:${job.id}:${index}:unidentified`,
    defaultCurrency: runtime.config.defaultCurrency,
    requireId: defaultId === null,
  });
  if (job.attempts > 1) runtime.metrics.retries.inc({ task: job.task_identifier });
  // A child logger per command cost a measurable share of the worker's CPU (bench/LOG.md):
  // the fields go on each line instead, and most commands log nothing above debug.
  const commandFields = { command_id: parsed.ok ? parsed.command.id : parsed.id, job_id: job.id };
  let outcome: AppliedOutcome;
  try {
    outcome = await runtime.batcher.submit({ parsed, jobId: BigInt(job.id) }, job.priority);
  } catch (error) {
    const transient = isTransientError(error);
    const level = transient ? 'warn' : 'error';
    runtime.logger[level](
      { ...commandFields, err: error, attempt: job.attempts, transient },
      transient ? 'command failed, will retry' : 'command failed with an unexpected error, will retry',
    );
    throw error;
  }
  report(outcome, job, runtime, commandFields);
}

function report(
  outcome: AppliedOutcome,
  job: JobHelpers['job'],
  runtime: ReturnType<typeof getRuntime>,
  commandFields: { command_id: string; job_id: string },
): void {
  const log = runtime.logger;
  switch (outcome.kind) {
    case 'recorded': {
      const { result } = outcome;
      runtime.metrics.commands.inc({ type: result.type, code: result.code });
      runtime.metrics.latency.observe({ type: result.type }, (Date.now() - new Date(job.created_at).getTime()) / 1000);
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
      runtime.metrics.commands.inc({ type: outcome.type, code: 'id_conflict' });
      runtime.metrics.idConflicts.inc({ type: outcome.type });
      log.warn({ ...commandFields, type: outcome.type, code: 'id_conflict' }, outcome.message);
      return;
    case 'skipped':
      log.debug({ ...commandFields, reason: outcome.reason }, 'nothing to do');
      return;
  }
}
