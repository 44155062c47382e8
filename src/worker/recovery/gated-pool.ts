import pg from 'pg';

type ConnectCallback = (
  err: Error | undefined,
  client: pg.PoolClient | undefined,
  done: (release?: unknown) => void,
) => void;

/**
 * A pg.Pool whose `connect()` (and so `query()`, which goes through it) first waits for every
 * promise passed to `holdUntil()` before the call. graphile-worker gets every connection it fetches
 * jobs on from the pool given to `run({ pgPool })`, so holding the pool until a liveness
 * registration has committed means no job is ever locked under an unregistered id.
 */
export class RegistrationGatedPool extends pg.Pool {
  #gate: Promise<unknown> = Promise.resolve();

  holdUntil(until: Promise<unknown>): void {
    this.#gate = Promise.all([this.#gate, until]);
  }

  override connect(): Promise<pg.PoolClient>;
  override connect(callback: ConnectCallback): void;
  override connect(callback?: ConnectCallback): Promise<pg.PoolClient> | void {
    const gate = this.#gate;
    if (!callback) return gate.then(() => super.connect());
    gate.then(
      () => super.connect(callback),
      (err: Error) => callback(err, undefined, () => {}),
    );
  }
}
