import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { LbMetrics } from './metrics.js';
import { renderStatsPage } from './stats-page.js';
import type { LbStatus } from './status.js';

const TEXT = 'text/plain; charset=utf-8';

/**
 * The stats endpoint, read-only and bound to localhost by default: `GET /` and `GET /stats` answer
 * the HTML stats page, `GET /status` the load balancer's status as JSON (what `tandem status` and
 * `tandem up` read), `GET /metrics` the Prometheus metrics. Any other path is a 404, any other
 * method a 405.
 */
export function createStatsServer(
  status: () => Promise<LbStatus>,
  metrics?: LbMetrics,
  /** Brings the counters the metrics read up to date (a primary reads its workers'). */
  refresh: () => Promise<void> = () => Promise.resolve(),
): Server {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    const route =
      path === '/status'
        ? 'json'
        : path === '/' || path === '/stats'
          ? 'html'
          : path === '/metrics' && metrics
            ? 'metrics'
            : undefined;
    if (route === undefined) {
      send(
        res,
        404,
        TEXT,
        `not found: the stats endpoint serves GET / (HTML), /status (JSON)${metrics ? ' and /metrics (Prometheus)' : ''}\n`,
      );
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, 405, TEXT, 'method not allowed: use GET\n');
      return;
    }
    const failed = (err: unknown) =>
      send(res, 500, TEXT, `cannot read the status: ${(err as Error).message}\n`);
    if (route === 'json') {
      status().then(
        (s) => send(res, 200, 'application/json; charset=utf-8', `${JSON.stringify(s, null, 2)}\n`),
        failed,
      );
    } else if (route === 'html') {
      status().then((s) => send(res, 200, 'text/html; charset=utf-8', renderStatsPage(s)), failed);
    } else {
      refresh()
        .then(() => metrics!.metrics())
        .then(
          (text) => send(res, 200, metrics!.contentType, text),
          (err: unknown) => send(res, 500, TEXT, `cannot collect the metrics: ${(err as Error).message}\n`),
        );
    }
  });
  // Stats requests are short: an idle connection need not outlive a close() by long.
  server.keepAliveTimeout = 1000;
  return server;
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  if (res.destroyed) return;
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  res.end(body);
}
