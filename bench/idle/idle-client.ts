/**
 * The client of the idle-connections test, run as its own process (with a raised open-files
 * limit): `node idle-client.js PORT COUNT`. Opens COUNT connections to 127.0.0.1:PORT, sends one
 * `GET /` on each and reads the whole answer, then keeps every connection open and idle.
 *
 * Protocol on stdio: once every connection is answered (or failed) it prints
 * `{"held":N,"failed":N,"firstError":"…"}`; on a `check` line on stdin it prints `{"open":N}` (the
 * connections the server has not closed); when stdin ends it closes them all and exits.
 */
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

const port = Number(process.argv[2]);
const count = Number(process.argv[3]);
/** Connections being opened (connected but not yet answered) at once. */
const IN_FLIGHT = 200;
/** A connection without a whole answer by then counts as failed. */
const ANSWER_TIMEOUT_MS = 15_000;

const request = Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n');
const sockets = new Set<Socket>();
let held = 0;
let failed = 0;
let firstError = '';
let open = 0;

/** Resolves true once `socket` has had a whole 200 answer, false on an error, a close or a timeout. */
function oneConnection(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, noDelay: true });
    let data = Buffer.alloc(0);
    let settled = false;
    let connected = false;
    const settle = (ok: boolean, why?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!ok) {
        if (!firstError && why) firstError = why;
        socket.destroy();
      }
      resolve(ok);
    };
    const timer = setTimeout(
      () => settle(false, `no answer within ${ANSWER_TIMEOUT_MS} ms`),
      ANSWER_TIMEOUT_MS,
    );
    socket.on('connect', () => {
      connected = true;
      open++;
      socket.write(request);
    });
    socket.on('data', (chunk: Buffer) => {
      if (settled) return;
      data = Buffer.concat([data, chunk]);
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = data.subarray(0, end).toString('latin1');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1]);
      if (status !== 200) {
        settle(false, `answer ${head.split('\r\n')[0]}`);
        return;
      }
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      const body = data.length - end - 4;
      const complete = length ? body >= Number(length[1]) : data.subarray(-5).toString() === '0\r\n\r\n';
      if (complete) {
        data = Buffer.alloc(0);
        settle(true);
      }
    });
    socket.on('error', (err) => settle(false, err.message));
    socket.on('close', () => {
      sockets.delete(socket);
      if (connected) open--;
      settle(false, 'closed by the server');
    });
    sockets.add(socket);
  });
}

async function openAll(): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      if (await oneConnection()) held++;
      else failed++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, count) }, worker));
}

await openAll();
process.stdout.write(`${JSON.stringify({ held, failed, firstError })}\n`);
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() === 'check') process.stdout.write(`${JSON.stringify({ open })}\n`);
});
lines.on('close', () => {
  for (const s of sockets) s.destroy();
  process.exitCode = 0;
});
