import pg from 'pg';

/**
 * libpq's multi-host URLs for node-postgres, which does not understand them (its issues #1470,
 * #2781): `postgres://u@h1:5432,h2:5432/db?target_session_attrs=read-write` lists hosts to try
 * in order, and `target_session_attrs` says which kind of server is acceptable. Every connection
 * this package opens (pools, graphile-worker's pool and listener, migrations, the client, the CLI)
 * is a `HostClient`, so they all find the same server, and a new connection after a failover finds
 * the new primary. A URL with one host and no `target_session_attrs` connects exactly as pg does.
 */

export const sessionAttrs = ['any', 'read-write', 'read-only', 'primary', 'standby', 'prefer-standby'] as const;
export type SessionAttrs = (typeof sessionAttrs)[number];

export interface HostAddress {
  host: string;
  port: number;
}

export interface ParsedDatabaseUrl {
  hosts: HostAddress[];
  targetSessionAttrs: SessionAttrs;
  /**
   * `sslmode=prefer`, as libpq reads it: TLS where the server offers it (its certificate not
   * checked), plain where it does not. node-postgres takes `prefer` as `verify-full` and then
   * cannot reach a server without TLS at all; `pg_autoctl show uri` writes `prefer`.
   */
  sslPrefer: boolean;
  /** The URL with only `host` in it, no `target_session_attrs` and no `sslmode=prefer`: what pg itself can read. */
  urlFor(host: HostAddress): string;
}

export class DatabaseUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatabaseUrlError';
  }
}

const urlShape = /^(postgres(?:ql)?):\/\/(?:([^@/?#]*)@)?([^/?#]*)([^?#]*)(?:\?([^#]*))?$/;

/** Parses a postgres:// URL with one or several hosts; throws DatabaseUrlError if it is not one. */
export function parseDatabaseUrl(url: string): ParsedDatabaseUrl {
  const match = urlShape.exec(url);
  if (!match) throw new DatabaseUrlError('not a postgres:// URL');
  const [, scheme, userinfo, netloc = '', path = '', query = ''] = match;
  const params = new URLSearchParams(query);
  const attrs = params.get('target_session_attrs') ?? 'any';
  if (!(sessionAttrs as readonly string[]).includes(attrs))
    throw new DatabaseUrlError(`target_session_attrs must be one of ${sessionAttrs.join(', ')}, got "${attrs}"`);
  params.delete('target_session_attrs');
  const sslPrefer = params.get('sslmode') === 'prefer' && !params.has('uselibpqcompat');
  if (sslPrefer) params.delete('sslmode');
  const hosts = netloc === '' ? [] : netloc.split(',').map(parseHost);
  const rest = params.toString();
  const build = (host: HostAddress | undefined) => {
    const hostPart = host ? `${host.host.includes(':') ? `[${host.host}]` : host.host}:${host.port}` : '';
    return `${scheme}://${userinfo !== undefined ? `${userinfo}@` : ''}${hostPart}${path}${rest ? `?${rest}` : ''}`;
  };
  for (const host of hosts.length ? hosts : [undefined]) {
    try {
      new URL(build(host));
    } catch {
      throw new DatabaseUrlError(`not a postgres:// URL (at host "${host?.host ?? ''}")`);
    }
  }
  return { hosts, targetSessionAttrs: attrs as SessionAttrs, sslPrefer, urlFor: build };
}

function parseHost(part: string): HostAddress {
  const match = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(part);
  if (!match || match[1] === '') throw new DatabaseUrlError(`a host in the URL is empty or malformed: "${part}"`);
  const host = match[1]!.replace(/^\[(.*)\]$/, '$1');
  const port = match[2] ? Number(match[2]) : 5432;
  if (port < 1 || port > 65535) throw new DatabaseUrlError(`port out of range in "${part}"`);
  return { host, port };
}

/** True if the URL needs HostClient's choice: several hosts, a kind of server asked for, or sslmode=prefer. */
export function choosesHost(url: string): boolean {
  try {
    const parsed = parseDatabaseUrl(url);
    return parsed.hosts.length > 1 || parsed.targetSessionAttrs !== 'any' || parsed.sslPrefer;
  } catch {
    return false;
  }
}

/**
 * The URL for a part that writes (worker, migrations, the client: NOTIFY and LISTEN only work on
 * a primary): `any` (the default) becomes `read-write`, so that it never settles on a standby,
 * where graphile-worker's LISTEN fails in a loop. `primary` and `read-write` stay as they are.
 */
export function writableUrl(url: string): string {
  let parsed: ParsedDatabaseUrl;
  try {
    parsed = parseDatabaseUrl(url);
  } catch {
    return url; // checked and reported elsewhere (config.ts)
  }
  if (parsed.targetSessionAttrs === 'primary' || parsed.targetSessionAttrs === 'read-write') return url;
  if (parsed.targetSessionAttrs !== 'any')
    throw new DatabaseUrlError(`target_session_attrs=${parsed.targetSessionAttrs} cannot be used to write`);
  return `${url}${url.includes('?') ? '&' : '?'}target_session_attrs=read-write`;
}

/** `host:port` of each host, for logs and errors (no user, no password). */
export function describeHosts(url: string): string {
  try {
    return parseDatabaseUrl(url)
      .hosts.map((host) => `${host.host}:${host.port}`)
      .join(',');
  } catch {
    return '?';
  }
}

/** What a server said it is, read on a fresh connection. */
export interface ServerState {
  inRecovery: boolean;
  readOnly: boolean;
}

const stateQuery =
  "select pg_is_in_recovery() as in_recovery, current_setting('transaction_read_only') = 'on' as read_only";

async function readState(client: Pick<pg.ClientBase, 'query'>): Promise<ServerState> {
  const { rows } = await client.query<{ in_recovery: boolean; read_only: boolean }>(stateQuery);
  return { inRecovery: rows[0]!.in_recovery, readOnly: rows[0]!.read_only };
}

/** libpq's rules for target_session_attrs (prefer-standby is handled by the order of passes). */
function fits(attrs: SessionAttrs, state: ServerState): boolean {
  switch (attrs) {
    case 'any':
    case 'prefer-standby':
      return true;
    case 'read-write':
      return !state.readOnly;
    case 'read-only':
      return state.readOnly;
    case 'primary':
      return !state.inRecovery;
    case 'standby':
      return state.inRecovery;
  }
}

export class NoFittingServerError extends Error {
  readonly attrs: SessionAttrs;
  readonly code: string;
  constructor(attrs: SessionAttrs, tried: string[]) {
    super(`no server fits target_session_attrs=${attrs}: ${tried.join('; ')}`);
    this.name = 'NoFittingServerError';
    // sqlclient_unable_to_establish_sqlconnection: what libpq's callers see; transient (db/errors.ts).
    this.code = '08001';
    this.attrs = attrs;
  }
}

/**
 * The host chosen for one URL, shared by every connection to it in this process: the first
 * connection after a failover probes the hosts in order (one probe at a time), the next ones reuse
 * its answer. A connection that fails, or reaches a server that no longer fits, forgets it.
 */
class HostChoice {
  #chosen: HostAddress | undefined;
  #probing: Promise<HostAddress> | undefined;
  /** Called when a probe settles on a host other than the one before (for logs and metrics). */
  readonly listeners = new Set<(host: HostAddress) => void>();
  #last: HostAddress | undefined;
  readonly parsed: ParsedDatabaseUrl;
  readonly connectTimeoutMs: number;
  /** Hosts that answered a TLS request with no (`sslmode=prefer` then talks to them in plain). */
  readonly #withoutTls = new Set<string>();

  constructor(parsed: ParsedDatabaseUrl, connectTimeoutMs: number) {
    this.parsed = parsed;
    this.connectTimeoutMs = connectTimeoutMs;
  }

  get chosen(): HostAddress | undefined {
    return this.#chosen;
  }

  /** The host of the last probe that found one (kept through a failover, unlike `chosen`). */
  get last(): HostAddress | undefined {
    return this.#last;
  }

  async pick(): Promise<HostAddress> {
    if (this.#chosen) return this.#chosen;
    this.#probing ??= this.#probe().finally(() => (this.#probing = undefined));
    return this.#probing;
  }

  forget(host: HostAddress): void {
    if (this.#chosen === host) this.#chosen = undefined;
  }

  /** pg's `ssl` setting for a connection to `host`; undefined: as the URL says. */
  sslFor(host: HostAddress): pg.ClientConfig['ssl'] | undefined {
    if (!this.parsed.sslPrefer) return undefined;
    return this.#withoutTls.has(`${host.host}:${host.port}`) ? false : { rejectUnauthorized: false };
  }

  /** Whether `error` says the server has no TLS; if so, `host` is talked to in plain from now on. */
  noteTlsRefused(host: HostAddress, error: unknown): boolean {
    if (!this.parsed.sslPrefer || !(error instanceof Error) || !/does not support SSL/.test(error.message))
      return false;
    this.#withoutTls.add(`${host.host}:${host.port}`);
    return true;
  }

  async #probe(): Promise<HostAddress> {
    const attrs = this.parsed.targetSessionAttrs;
    const tried: string[] = [];
    // prefer-standby: a standby if any answers, else any server (libpq's two passes).
    const passes: SessionAttrs[] = attrs === 'prefer-standby' ? ['standby', 'any'] : [attrs];
    for (const pass of passes) {
      for (const host of this.parsed.hosts) {
        const connect = async () => {
          const ssl = this.sslFor(host);
          const client = new pg.Client({
            connectionString: this.parsed.urlFor(host),
            connectionTimeoutMillis: this.connectTimeoutMs,
            application_name: 'pg-billing host probe',
            ...(ssl === undefined ? {} : { ssl }),
          });
          client.on('error', () => {});
          try {
            await client.connect();
          } catch (error) {
            await client.end().catch(() => {});
            throw error;
          }
          return client;
        };
        let client: pg.Client | undefined;
        try {
          // sslmode=prefer: TLS first, plain once the server says it has none (libpq does the same).
          client = await connect().catch((error: unknown) => {
            if (this.noteTlsRefused(host, error)) return connect();
            throw error;
          });
          const state = await readState(client);
          if (fits(pass, state)) {
            this.#chosen = host;
            if (this.#last?.host !== host.host || this.#last.port !== host.port)
              for (const listener of this.listeners) listener(host);
            this.#last = host;
            return host;
          }
          tried.push(`${host.host}:${host.port} is ${state.inRecovery ? 'a standby' : 'read-only'}`);
        } catch (error) {
          tried.push(`${host.host}:${host.port} ${error instanceof Error ? error.message : String(error)}`);
        } finally {
          await client?.end().catch(() => {});
        }
      }
    }
    throw new NoFittingServerError(attrs, tried);
  }
}

const choices = new Map<string, HostChoice>();

function choiceFor(url: string, connectTimeoutMs: number): HostChoice | undefined {
  if (!choosesHost(url)) return undefined;
  let choice = choices.get(url);
  if (!choice) {
    choice = new HostChoice(parseDatabaseUrl(url), connectTimeoutMs);
    choices.set(url, choice);
  }
  return choice;
}

/**
 * Calls `listener` with the host connections to `url` settled on (at once if one is known), then
 * each time they settle on a different one. Returns a function that removes it.
 */
export function onHostChosen(url: string, listener: (host: HostAddress) => void): () => void {
  const choice = choiceFor(url, 5_000);
  if (!choice) return () => {};
  if (choice.last) listener(choice.last);
  choice.listeners.add(listener);
  return () => choice.listeners.delete(listener);
}

/**
 * `host:port` that connections to `url` use now: the chosen host of several, else the URL's only
 * one; undefined between two choices (a failover under way).
 */
export function currentServer(url: string): string | undefined {
  const choice = choiceFor(url, 5_000);
  let host: HostAddress | undefined;
  try {
    host = choice ? choice.chosen : parseDatabaseUrl(url).hosts[0];
  } catch {
    return undefined;
  }
  return host ? `${host.host}:${host.port}` : choice ? undefined : 'local socket';
}

type ConnectCallback = ((error: Error) => void) | ((error: null, client: pg.Client) => void);

/**
 * A pg.Client (a drop-in, also as a pg.Pool's `Client`) that accepts libpq's multi-host URLs: it
 * connects to the host chosen for its URL and checks, on that very connection, that the server
 * still fits `target_session_attrs` before anyone uses it (a cached choice may be the old primary,
 * back as a standby). For a plain URL it is pg.Client.
 */
export class HostClient extends pg.Client {
  readonly #choice: HostChoice | undefined;

  constructor(config?: string | pg.ClientConfig) {
    const settings: pg.ClientConfig = typeof config === 'string' ? { connectionString: config } : { ...config };
    const url = settings.connectionString;
    const choice = url ? choiceFor(url, settings.connectionTimeoutMillis || 5_000) : undefined;
    if (choice) settings.connectionString = choice.parsed.urlFor(choice.parsed.hosts[0]!);
    super(settings);
    this.#choice = choice;
  }

  override connect(): Promise<pg.Client>;
  override connect(callback: ConnectCallback): void;
  override connect(callback?: ConnectCallback): Promise<pg.Client> | void {
    // pg's callback is called in the same parse as the login's ReadyForQuery: its caller (a pool)
    // listens for 'error' before pg reads on. A promise gives no such turn (below).
    if (!this.#choice && callback) return super.connect(callback);
    const connecting = this.#guarded(() => (this.#choice ? this.#connectToChosenHost() : super.connect())).then(
      () => this,
    );
    if (!callback) return connecting;
    connecting.then(
      (client) => (callback as (error: null, client: pg.Client) => void)(null, client),
      (error: Error) => (callback as (error: Error) => void)(error),
    );
  }

  /**
   * Runs `connect` with an 'error' listener on this client from before its socket opens until it
   * is handed over, and fails it if the connection was lost meanwhile. A session the server ends
   * just as it logs in (pg_terminate_backend, a failover, read by a process that was paused or
   * busy) delivers ReadyForQuery and the FATAL error in one read: pg settles connect() and then
   * emits 'error' for the second message before the awaiting code has run, and an 'error' nobody
   * listens to ends the process. Nobody else can listen yet: a pool adds its listener in the
   * connect callback, `await client.connect(); client.on('error', ...)` after the await.
   */
  async #guarded(connect: () => Promise<unknown>): Promise<void> {
    let lost: Error | undefined;
    const onError = (error: Error): void => void (lost ??= error);
    this.on('error', onError);
    try {
      await connect();
      // Lost after the login (or the check's query) answered: a dead session is no connection.
      if (lost) {
        const chosen = this.#choice?.chosen;
        if (chosen && chosen.host === this.host && chosen.port === this.port) this.#choice!.forget(chosen);
        await this.end().catch(() => {});
        throw lost;
      }
    } finally {
      this.off('error', onError);
    }
  }

  async #connectToChosenHost(): Promise<void> {
    const choice = this.#choice!;
    const host = await choice.pick();
    // pg reads these when it opens the socket (and for .pgpass); they were set from the first host.
    const self = this as unknown as {
      host: string;
      port: number;
      connectionParameters: HostAddress;
      ssl: pg.ClientConfig['ssl'];
      connection: { ssl: pg.ClientConfig['ssl'] };
    };
    self.host = self.connectionParameters.host = host.host;
    self.port = self.connectionParameters.port = host.port;
    // The socket asks for TLS by the client's and its connection's `ssl`, both set from the URL.
    const ssl = choice.sslFor(host);
    if (ssl !== undefined) self.ssl = self.connection.ssl = ssl;
    try {
      await super.connect();
    } catch (error) {
      choice.noteTlsRefused(host, error); // the next connection goes plain (a pool retries)
      choice.forget(host);
      throw error;
    }
    const attrs = choice.parsed.targetSessionAttrs;
    if (attrs === 'any' || attrs === 'prefer-standby') return;
    // A connection lost during the check fails it (#guarded listens for its 'error').
    const state = await readState(this).catch(async (error: unknown) => {
      choice.forget(host);
      throw error;
    });
    if (!fits(attrs, state)) {
      choice.forget(host);
      await this.end().catch(() => {});
      throw new NoFittingServerError(attrs, [`${host.host}:${host.port} is no longer a fit (failover?)`]);
    }
  }
}
