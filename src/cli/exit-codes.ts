/** What scripts can rely on (`billing --help` lists them; test/cli.test.ts checks each). */
export const exitCodes = {
  /** The command was applied; any other subcommand succeeded. */
  ok: 0,
  /** Error: bad usage or setting, no database, not migrated, timeout waiting for a result, `verify` found a breach. */
  error: 1,
  /**
   * The service answered and said no: the command was rejected (insufficient_funds, ...), or an
   * account does not exist.
   */
  rejected: 2,
  /** `billing result <id>`: no result is stored under that id (not applied yet, or never sent). */
  noResult: 3,
  /** `billing worker`/`start` cannot go on by itself (an uncaught fault, the schema gone): restart it. */
  workerFatal: 70,
} as const;

export const exitCodesHelp = `Exit codes:
  0   applied / done
  1   error: bad usage, a setting refused (the message names it), no database, not migrated,
      no result before --timeout (the command may still apply later: billing result <id>),
      a failed check of verify, a forced stop (second Ctrl-C)
  2   rejected by the service (insufficient_funds, account_not_found, ...; the code is printed),
      or balance: an account that does not exist (with --at: not open at that point)
  3   result: no result stored under that id (not applied yet, or never sent)
  70  worker, start: cannot go on by itself (an uncaught fault); its supervisor starts a fresh one.
      A PostgreSQL restart is not one: the worker waits for the server and carries on`;
