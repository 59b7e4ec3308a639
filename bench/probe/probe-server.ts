/**
 * A server of the server-cost probe: `node probe-server.js node-http|llhttp PORT`. Both answer
 * every request with the same 18 bytes of text and keep the connection open; `node-http` is
 * node:http's server, `llhttp` a net server that parses requests with Node's own llhttp parser
 * (the parser node:http uses) and writes a prebuilt answer: the least a Node.js HTTP server does.
 */
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { createRequire } from 'node:module';

const BODY = 'hello from web-01\n';
const kind = process.argv[2];
const port = Number(process.argv[3]);

if (kind === 'node-http') {
  createHttpServer({ keepAliveTimeout: 300_000 }, (_req, res) => {
    res.writeHead(200, ['Content-Type', 'text/plain', 'Content-Length', String(BODY.length)]);
    res.end(BODY);
  }).listen(port, '127.0.0.1');
} else if (kind === 'llhttp') {
  interface Parser {
    initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
    execute(data: Buffer): number | Error;
    [slot: number]: unknown;
  }
  const { HTTPParser } = createRequire(import.meta.url)('_http_common') as {
    HTTPParser: { new (): Parser; REQUEST: number; kOnHeadersComplete: number; kOnMessageComplete: number };
  };
  const answer = Buffer.from(
    `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${BODY.length}\r\n` +
      `Connection: keep-alive\r\n\r\n${BODY}`,
  );
  createNetServer({ noDelay: true }, (socket: Socket) => {
    const parser = new HTTPParser();
    parser.initialize(HTTPParser.REQUEST, {}, 16384, 0);
    parser[HTTPParser.kOnHeadersComplete] = () => 0;
    parser[HTTPParser.kOnMessageComplete] = () => socket.write(answer);
    socket.on('data', (data: Buffer) => {
      if (parser.execute(data) instanceof Error) socket.destroy();
    });
    socket.on('error', () => socket.destroy());
  }).listen(port, '127.0.0.1');
} else {
  console.error('usage: probe-server.js node-http|llhttp PORT');
  process.exit(2);
}
