// A session ended by the server (pg_terminate_backend: a failover's chaos run, a DBA) whose last
// bytes reach the client in one read with the end of its login, as they do for a paused
// (SIGSTOP) or busy process: ReadyForQuery, then the FATAL 57P01. pg parses both in one go and
// emits 'error' for the second before any caller of connect() has had a turn to listen. A
// HostClient (every pool and session of a worker: the worker's URL always asks for read-write)
// must fail that connect() or its next query, never crash the process with an unheard 'error'.
//
// The bytes are held back by a real TCP relay between the client and the real PostgreSQL, the way
// a stopped process's socket buffer holds them, and handed over in one write.
import net from 'node:net';
import t from 'tap';
import { HostClient } from '../src/db/hosts.ts';
import { createPool } from '../src/db/pool.ts';
import { createTestDatabase } from './helpers/database.ts';
import { waitFor } from './helpers/wait.ts';

const database = await createTestDatabase('connect_race');
const upstream = new URL(database.url);

/** Relays to PostgreSQL; while `holding`, a new connection's server bytes wait in a buffer. */
class HoldingRelay {
  holding = false;
  readonly server = net.createServer((client) => this.#accept(client));
  readonly #held: { client: net.Socket; chunks: Buffer[]; serverEnded: boolean }[] = [];

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  #accept(client: net.Socket): void {
    const server = net.connect(Number(upstream.port || 5432), upstream.hostname);
    client.on('error', () => {});
    server.on('error', () => {});
    client.pipe(server);
    if (!this.holding) {
      server.pipe(client);
      return;
    }
    this.holding = false; // only the next connection
    const held = { client, chunks: [] as Buffer[], serverEnded: false };
    this.#held.push(held);
    server.on('data', (chunk: Buffer) => held.chunks.push(chunk));
    server.on('end', () => (held.serverEnded = true));
  }

  /** Waits until the server has closed the held connection, then hands all its bytes over in one write. */
  async flushAfterServerEnd(): Promise<void> {
    const held = await waitFor('a held connection the server ended', () =>
      this.#held.find((h) => h.serverEnded) ? this.#held.shift() : undefined,
    );
    held.client.end(Buffer.concat(held.chunks));
  }

  close(): void {
    this.server.close();
  }
}

const relay = new HoldingRelay();
const relayPort = await relay.listen();
const relayed = new URL(database.url);
relayed.host = `127.0.0.1:${relayPort}`;
relayed.searchParams.set('target_session_attrs', 'read-write');
const url = relayed.toString();

t.teardown(async () => {
  relay.close();
  await database.drop();
});

/** Ends the backend named `applicationName` once it has logged in (its ReadyForQuery is sent). */
async function terminateOnceLoggedIn(applicationName: string): Promise<void> {
  await waitFor(`${applicationName} logged in and ended`, async () => {
    const { rows } = await database.query<{ ended: boolean }>(
      `select pg_terminate_backend(pid) as ended from pg_stat_activity
       where application_name = $1 and state = 'idle'`,
      [applicationName],
    );
    return rows.some((row) => row.ended) ? true : undefined;
  });
}

// A crash here is an 'error' event nobody listens to: the test process itself would die.
const unheard: unknown[] = [];
const onUncaught = (error: unknown) => unheard.push(error);
process.on('uncaughtException', onUncaught);
t.teardown(() => void process.off('uncaughtException', onUncaught));

/** The host choice is made once per URL (a probe): made again here, on a connection that is not held. */
async function chooseHost(): Promise<void> {
  const first = new HostClient({ connectionString: url, application_name: 'race-first' });
  await first.connect();
  await first.end();
}

t.test('a client whose session ends as it logs in: connect() or its next query fails', async (t) => {
  await chooseHost();
  relay.holding = true;
  const client = new HostClient({ connectionString: url, application_name: 'race-client' });
  const connecting = client.connect().then(
    () => client.query('select 1'),
    (error: unknown) => Promise.reject(error as Error),
  );
  await terminateOnceLoggedIn('race-client');
  await relay.flushAfterServerEnd();
  await t.rejects(connecting, 'connect() or the first query fails');
  client.on('error', () => {});
  await client.end().catch(() => {});
  t.same(unheard, [], 'no error event went unheard');
});

t.test('a pool whose new connection ends as it logs in: the query fails, the pool goes on', async (t) => {
  const pool = createPool({ connectionString: url, max: 2, applicationName: 'race-pool' });
  await chooseHost();
  relay.holding = true;
  const query = pool.query('select 1');
  await terminateOnceLoggedIn('race-pool');
  await relay.flushAfterServerEnd();
  await query.catch(() => {}); // failed or (if the pool retried) answered: either is fine here
  t.same(unheard, [], 'no error event went unheard');
  const { rows } = await pool.query<{ one: number }>('select 1 as one');
  t.equal(rows[0]!.one, 1, 'the pool answers again');
  await pool.end();
});
