import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { LbStatus } from './status.js';

/**
 * The stats endpoint: `GET /status` answers the load balancer's status as JSON; any other path is
 * a 404, any other method a 405. Meant for operators and `tandem status`, bound to localhost by default.
 */
export function createStatsServer(status: () => LbStatus): Server {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== '/status') {
      send(res, 404, 'text/plain; charset=utf-8', 'not found: the stats endpoint serves GET /status\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed: use GET\n');
      return;
    }
    send(res, 200, 'application/json; charset=utf-8', `${JSON.stringify(status(), null, 2)}\n`);
  });
  // Status requests are short: an idle connection need not outlive a close() by long.
  server.keepAliveTimeout = 1000;
  return server;
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  res.end(body);
}
