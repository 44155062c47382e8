import { createServer, type Server } from 'node:http';
import type { Metrics } from './metrics.ts';

export interface HealthChecks {
  /** Alive: the process is running its runner, or getting a fresh one after losing the database. */
  live(): boolean;
  /** Ready: a runner takes jobs and the database answers. */
  ready(): Promise<boolean>;
  /** host:port of the server the worker reached (several in DATABASE_URL: the primary), for /readyz. */
  server?(): string | undefined;
}

export interface Listen {
  /** The port wanted; 0 asks the OS for any free one. */
  port: number;
  host: string;
  /**
   * True when the user asked for this port: taken means an error (PortTakenError). False for the
   * default, which is only a preference: the next `fallbackPorts` ports are tried, then any free one.
   */
  explicit: boolean;
}

/** How many ports after the default a worker tries before it takes any free one (docs/operations.md: Metrics). */
export const fallbackPorts = 9;

/** An explicitly asked-for port is in use (or not ours to bind): the message names the setting. */
export class PortTakenError extends Error {
  constructor(port: number, host: string, cause: string) {
    super(
      `BILLING_HTTP_PORT=${port}: cannot listen on ${host}:${port} (${cause}); choose another port, or unset it to take a free one`,
    );
    this.name = 'PortTakenError';
  }
}

/**
 * /healthz, /readyz and Prometheus /metrics on one small HTTP server. Resolves with the server
 * listening; `server.address()` is where it listens, which is what the logs and the banner show.
 */
export async function startHttpServer(listen: Listen, metrics: Metrics, checks: HealthChecks): Promise<Server> {
  const renderMetrics = renderedAtMostEvery(metricsRenderTtlMs, () => metrics.registry.metrics());
  const server = createServer((request, response) => {
    const reply = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      response.writeHead(status, { 'content-type': type });
      response.end(body);
    };
    const route = async () => {
      switch (request.url?.split('?')[0]) {
        case '/healthz':
          return checks.live() ? reply(200, 'ok\n') : reply(503, 'runner stopped\n');
        case '/readyz':
          return (await checks.ready())
            ? reply(200, `ready: ${checks.server?.() ?? 'database'}\n`)
            : reply(503, `not ready: ${checks.server?.() ?? 'no primary yet'}\n`);
        case '/metrics':
          // Only what is in memory: the gauges read from the database are refreshed by their own
          // loop (database-gauges.ts), so a scrape costs the same whatever the queue holds.
          return reply(200, await renderMetrics(), metrics.registry.contentType);
        default:
          return reply(404, 'not found: try /healthz, /readyz or /metrics\n');
      }
    };
    route().catch((error: unknown) => reply(500, `${String(error)}\n`));
  });
  if (listen.explicit) {
    await bind(server, listen.port, listen.host).catch((error: NodeJS.ErrnoException) => {
      throw error.code === 'EADDRINUSE' || error.code === 'EACCES' || error.code === 'EADDRNOTAVAIL'
        ? new PortTakenError(listen.port, listen.host, error.code === 'EADDRINUSE' ? 'in use' : error.code)
        : error;
    });
    return server;
  }
  const candidates =
    listen.port === 0 ? [0] : [...Array.from({ length: fallbackPorts + 1 }, (_, i) => listen.port + i), 0];
  for (const port of candidates) {
    try {
      await bind(server, port, listen.host);
      return server;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port === 0) throw error;
    }
  }
  throw new Error('unreachable: port 0 either binds or throws');
}

/**
 * How long one rendering of /metrics answers every scrape. Rendering runs on the worker's only
 * thread, the one that runs commands (and the default process metrics read /proc): 32 scrapers
 * fetching back to back took another client's command p50 to 2 s. Cached, any number of scrapers
 * cost one rendering a second; Prometheus scrapes every 15 s or so, so values 1 s old lose nothing.
 */
export const metricsRenderTtlMs = 1_000;

/** `render` at most once per `ttlMs`: calls in between get the last text, calls during a render share it. */
function renderedAtMostEvery(ttlMs: number, render: () => Promise<string>): () => Promise<string> {
  let last: { at: number; text: string } | undefined;
  let rendering: Promise<string> | undefined;
  return () => {
    if (last && performance.now() - last.at < ttlMs) return Promise.resolve(last.text);
    rendering ??= render()
      .then((text) => {
        last = { at: performance.now(), text };
        return text;
      })
      .finally(() => (rendering = undefined));
    return rendering;
  };
}

function bind(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once('error', onError);
    server.listen({ port, host, exclusive: true }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
