import { createServer, type Server } from 'node:http';
import type { Metrics } from './metrics.ts';

export interface HealthChecks {
  /** Alive: the runner is running. A supervisor restarts the process when this fails. */
  live(): boolean;
  /** Ready: alive and the database answers. */
  ready(): Promise<boolean>;
  /** Refreshes gauges read from the database (queue depth) before a scrape. */
  beforeScrape(): Promise<void>;
}

/** /healthz, /readyz and Prometheus /metrics on one small HTTP server. */
export function startHttpServer(port: number, metrics: Metrics, checks: HealthChecks): Promise<Server> {
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
          return (await checks.ready()) ? reply(200, 'ready\n') : reply(503, 'not ready\n');
        case '/metrics':
          await checks.beforeScrape().catch(() => {});
          return reply(200, await metrics.registry.metrics(), metrics.registry.contentType);
        default:
          return reply(404, 'not found: try /healthz, /readyz or /metrics\n');
      }
    };
    route().catch((error: unknown) => reply(500, `${String(error)}\n`));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, () => resolve(server));
  });
}
