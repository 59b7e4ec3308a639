/**
 * One benchmark backend, run as its own process: `node backend-server.js NAME`. Listens on a port
 * of 127.0.0.1 chosen by the OS and prints `{"port":N}` on stdout once it does.
 *
 * Routes: `GET /` a small plain-text answer (`hello from NAME\n`), `GET /64k` a 64 KiB plain-text
 * answer, `GET /healthz` `ok` (for the proxies' health checks); anything else 404.
 */
import { createServer } from 'node:http';
import { BIG_PATH, BIG_SIZE, SMALL_PATH } from './cases.js';

const name = process.argv[2] ?? 'web';
const small = Buffer.from(`hello from ${name}\n`);
const big = Buffer.alloc(BIG_SIZE, 'x');
big.write(`${name}\n`);
const ok = Buffer.from('ok\n');
const notFound = Buffer.from('not found\n');
const smallLength = String(small.length);
const bigLength = String(big.length);

const server = createServer((req, res) => {
  const url = req.url;
  if (url === SMALL_PATH) {
    res.writeHead(200, ['Content-Type', 'text/plain', 'Content-Length', smallLength]);
    res.end(small);
  } else if (url === BIG_PATH) {
    res.writeHead(200, ['Content-Type', 'text/plain', 'Content-Length', bigLength]);
    res.end(big);
  } else if (url === '/healthz') {
    res.writeHead(200, ['Content-Type', 'text/plain', 'Content-Length', '3']);
    res.end(ok);
  } else {
    res.writeHead(404, ['Content-Type', 'text/plain', 'Content-Length', String(notFound.length)]);
    res.end(notFound);
  }
});
// The proxies keep connections to the backends open between runs: never close them first.
server.keepAliveTimeout = 300_000;
server.headersTimeout = 310_000;
server.requestTimeout = 0;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
});
