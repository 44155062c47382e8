/** What scripts can rely on (`billing --help` lists them). */
export const exitCodes = {
  /** The command was applied; any other subcommand succeeded. */
  ok: 0,
  /** Error: bad usage, no database, timeout waiting for a result, `verify` found a breach. */
  error: 1,
  /** The service answered and said no: the command was rejected (insufficient_funds, ...), or an account does not exist. */
  rejected: 2,
  /** `billing worker` stopped working by itself (runner ended, liveness lost): restart it. */
  workerFatal: 70,
} as const;

export const exitCodesHelp = `Exit codes:
  0   applied / done
  1   error: bad usage, no database, no result before --timeout (the command may still apply
      later), a failed check of verify, a forced stop (second Ctrl-C)
  2   rejected by the service (insufficient_funds, account_not_found, ...; the code is printed),
      or balance: an account that does not exist
  70  worker: stopped working by itself (runner ended, liveness lost); its supervisor restarts it`;
