// A TCP proxy between one worker and PostgreSQL that the chaos run steers, to fake network faults
// that signals cannot: a partition (blackhole), a reset, and a slow link (added latency).
import net from 'node:net';

export type ProxyMode =
  /** Bytes flow both ways. */
  | { kind: 'pass' }
  /**
   * Bytes are dropped both ways and new connections hang: what a partition looks like to both
   * ends (neither sees a FIN or a RST). Leaving it resets the connections it swallowed bytes of,
   * since their protocol streams are broken, as TCP would after its retransmissions gave up.
   */
  | { kind: 'blackhole' }
  /** Every current and new connection is reset at once. */
  | { kind: 'reset' }
  /** Each chunk is delivered `ms` later, in order. */
  | { kind: 'latency'; ms: number };

interface Link {
  client: net.Socket;
  server: net.Socket;
  damaged: boolean;
  openedAt: number;
}

export class TcpProxy {
  readonly #upstreamHost: string;
  readonly #upstreamPort: number;
  readonly #server: net.Server;
  readonly #links = new Set<Link>();
  #mode: ProxyMode = { kind: 'pass' };

  constructor(upstreamHost: string, upstreamPort: number) {
    this.#upstreamHost = upstreamHost;
    this.#upstreamPort = upstreamPort;
    this.#server = net.createServer((client) => this.#accept(client));
  }

  get mode(): ProxyMode {
    return this.#mode;
  }

  get connections(): number {
    return this.#links.size;
  }

  /** Connections open for at least `ms`: a running worker's sessions, not a reconnect's probes. */
  connectionsOlderThan(ms: number): number {
    const before = performance.now() - ms;
    return [...this.#links].filter((link) => link.openedAt <= before).length;
  }

  /** Listens on 127.0.0.1 at `port` (0: a free one); resolves with the port. */
  async listen(port = 0): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(port, '127.0.0.1', resolve));
    return (this.#server.address() as net.AddressInfo).port;
  }

  /**
   * Switches mode; returns how many connections the switch cut (reset): every one for `reset`,
   * and, leaving a blackhole, those whose bytes it swallowed.
   */
  setMode(mode: ProxyMode): number {
    const leavingBlackhole = this.#mode.kind === 'blackhole' && mode.kind !== 'blackhole';
    this.#mode = mode;
    const cut =
      mode.kind === 'reset'
        ? [...this.#links]
        : leavingBlackhole
          ? [...this.#links].filter((link) => link.damaged)
          : [];
    for (const link of cut) this.#reset(link);
    return cut.length;
  }

  async close(): Promise<void> {
    for (const link of this.#links) this.#reset(link);
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: net.Socket): void {
    client.on('error', () => {});
    if (this.#mode.kind === 'reset') {
      client.resetAndDestroy();
      return;
    }
    const server = net.connect(this.#upstreamPort, this.#upstreamHost);
    server.on('error', () => {});
    const link: Link = { client, server, damaged: false, openedAt: performance.now() };
    this.#links.add(link);
    const end = () => {
      if (!this.#links.delete(link)) return;
      // Half-open links would keep the server's session (and its locks) alive: close both sides.
      client.destroy();
      server.destroy();
    };
    client.on('close', end);
    server.on('close', end);
    this.#pipe(link, client, server);
    this.#pipe(link, server, client);
  }

  #pipe(link: Link, from: net.Socket, to: net.Socket): void {
    from.on('data', (chunk: Buffer) => {
      const mode = this.#mode;
      if (mode.kind === 'blackhole') {
        link.damaged = true;
        return;
      }
      if (mode.kind === 'latency') {
        // Pause so that later chunks cannot overtake this one.
        from.pause();
        setTimeout(() => {
          if (!to.destroyed) to.write(chunk);
          from.resume();
        }, mode.ms);
        return;
      }
      if (!to.destroyed) to.write(chunk);
    });
  }

  #reset(link: Link): void {
    this.#links.delete(link);
    link.client.resetAndDestroy();
    link.server.resetAndDestroy();
  }
}

/** Proxies steered as one: a worker whose URL lists several hosts reaches each through its own. */
export class TcpProxyGroup {
  readonly proxies: TcpProxy[];

  constructor(proxies: TcpProxy[]) {
    this.proxies = proxies;
  }

  get connections(): number {
    return this.proxies.reduce((sum, proxy) => sum + proxy.connections, 0);
  }

  connectionsOlderThan(ms: number): number {
    return this.proxies.reduce((sum, proxy) => sum + proxy.connectionsOlderThan(ms), 0);
  }

  setMode(mode: ProxyMode): number {
    return this.proxies.reduce((sum, proxy) => sum + proxy.setMode(mode), 0);
  }

  async close(): Promise<void> {
    await Promise.all(this.proxies.map((proxy) => proxy.close()));
  }
}
