/**
 * No result arrived in time. The command is in the queue (or already applied) all the same: it may
 * still take effect later, exactly once. Ask again with the same id and payload to learn its result.
 */
export class ResultTimeoutError extends Error {
  readonly commandId: string;
  readonly jobId: bigint;

  constructor(commandId: string, jobId: bigint, timeoutMs: number) {
    super(
      `no result for command ${commandId} (job ${jobId}) after ${timeoutMs} ms: it is enqueued and may still be applied later ` +
        '(is a worker running?); send it again with the same id to get its result, it will not apply twice',
    );
    this.name = 'ResultTimeoutError';
    this.commandId = commandId;
    this.jobId = jobId;
  }
}

export class ClientClosedError extends Error {
  constructor(what = 'the billing client was closed') {
    super(what);
    this.name = 'ClientClosedError';
  }
}
