/**
 * The Node.js proxy contender, run as its own process: `node http-proxy-3-server.js PORT1 PORT2`.
 * A plain `http-proxy-3` reverse proxy as its README shows it, with a keep-alive agent (TCP_NODELAY
 * on, as Tandem's own pool has it), round robin over the two backends, `X-Forwarded-*` headers, and
 * Forwarded and X-Request-Id as Tandem adds them; prints `{"port":N}` once it listens.
 */
import { Agent, createServer } from 'node:http';
import { createProxyServer } from 'http-proxy-3';

const targets = process.argv.slice(2).map((port) => `http://127.0.0.1:${port}`);
const agent = new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256, noDelay: true });
const proxy = createProxyServer({ agent, xfwd: true });
let next = 0;
// What Tandem's load balancer adds beyond X-Forwarded-* by default, for the same work per request:
// an RFC 7239 Forwarded element and a request id, the id also sent back to the client.
const idPrefix = process.pid.toString(36);
let lastId = 0;
proxy.on('proxyReq', (proxyReq, req) => {
  const host = req.headers.host;
  proxyReq.setHeader(
    'Forwarded',
    `for=${req.socket.remoteAddress ?? 'unknown'};proto=http${host === undefined ? '' : `;host="${host}"`}`,
  );
  proxyReq.setHeader('X-Request-Id', (req as { id?: string }).id!);
});

const server = createServer((req, res) => {
  const target = targets[next]!;
  next = (next + 1) % targets.length;
  const id = `${idPrefix}-${(++lastId).toString(36)}`;
  (req as { id?: string }).id = id;
  res.setHeader('X-Request-Id', id);
  proxy.web(req, res, { target }, (err) => {
    if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'text/plain' });
    res.end(`bad gateway: ${err.message}\n`);
  });
});
server.keepAliveTimeout = 300_000;
server.headersTimeout = 310_000;
server.requestTimeout = 0;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  agent.destroy();
});
