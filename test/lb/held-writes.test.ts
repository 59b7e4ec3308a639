/**
 * Writes held to the end of the event loop's turn (writeOutSoon, src/lb/proxy/direct-relay.ts):
 * the mechanism on real sockets, then the HTTP proxy's answers through it while many exchanges are
 * under way, where every path that writes to or closes a client connection after a held answer
 * must let the held answer out first.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import {
  directRelayAvailable,
  exchangesUnderWay,
  flushHeld,
  heldLength,
  writeOut,
  writeOutSoon,
  writesHeldSoFar,
} from '../../src/lb/proxy/direct-relay.js';
import { skipUnless, waitFor } from '../helpers/index.js';
import { startLb } from './fixtures.js';
import { configWith, RawClient, startHoldingBackend } from './protocol-fixtures.js';

/** A connected pair on 127.0.0.1: `side` (accepted by a server) and what its peer has received. */
async function socketPair(
  t: TestContext,
): Promise<{ side: Socket; received: () => string; closed: Promise<unknown> }> {
  const server: Server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const peer = connect((server.address() as { port: number }).port, '127.0.0.1');
  const chunks: Buffer[] = [];
  peer.on('data', (d: Buffer) => chunks.push(d));
  peer.on('error', () => undefined);
  const closed = once(peer, 'close');
  const [side] = await accepted;
  side.on('error', () => undefined);
  t.after(() => {
    side.destroy();
    peer.destroy();
    server.close();
  });
  return { side, received: () => Buffer.concat(chunks).toString('latin1'), closed };
}

/** Runs `fn` with `n` exchanges counted as under way (writeOutSoon holds only with two or more). */
async function withExchanges<T>(n: number, fn: () => Promise<T>): Promise<T> {
  for (let i = 0; i < n; i++) exchangesUnderWay(1);
  try {
    return await fn();
  } finally {
    for (let i = 0; i < n; i++) exchangesUnderWay(-1);
  }
}

const turnEnd = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('writeOutSoon: held until the end of the turn with two exchanges under way; written at once with one', async (t) => {
  const { side, received } = await socketPair(t);
  await withExchanges(1, async () => {
    writeOutSoon(side, 'alone;');
    assert.equal(heldLength(side), 0, 'a lone exchange is not held');
  });
  await waitFor('the lone write', () => received() === 'alone;' || undefined);
  await withExchanges(2, async () => {
    const before = writesHeldSoFar();
    writeOutSoon(side, 'held;');
    if (!directRelayAvailable) {
      // Without Node's stream binding every write goes through the socket's stream at once.
      assert.equal(heldLength(side), 0);
      return;
    }
    assert.equal(heldLength(side), 5);
    assert.equal(writesHeldSoFar(), before + 1);
    await turnEnd();
    assert.equal(heldLength(side), 0, 'written at the end of the turn');
  });
  await waitFor('the held write', () => received() === 'alone;held;' || undefined);
});

test('writeOutSoon: a held write stays first in line on every path that writes or ends', async (t) => {
  await withExchanges(2, async () => {
    // writeOut after a held write.
    const a = await socketPair(t);
    writeOutSoon(a.side, 'one;');
    writeOut(a.side, Buffer.from('two;'));
    await waitFor('writeOut after a held write', () => a.received() === 'one;two;' || undefined);

    // The socket's own write and end, after flushHeld (what the proxy does before them).
    const b = await socketPair(t);
    writeOutSoon(b.side, 'first;');
    flushHeld(b.side);
    b.side.write('second;');
    b.side.end('last');
    await b.closed.catch(() => undefined);
    await waitFor('write and end after flushHeld', () => b.received() === 'first;second;last' || undefined);

    // A second writeOutSoon on the same socket in the same turn.
    const c = await socketPair(t);
    writeOutSoon(c.side, 'x;');
    writeOutSoon(c.side, 'y;');
    await turnEnd();
    await waitFor('two in one turn, in order', () => c.received() === 'x;y;' || undefined);

    // Corked: through the stream at once, behind what the stream holds.
    const d = await socketPair(t);
    d.side.cork();
    d.side.write('corked;');
    writeOutSoon(d.side, 'after;');
    assert.equal(heldLength(d.side), 0, 'a corked socket is not held for');
    d.side.uncork();
    await waitFor('after a corked write', () => d.received() === 'corked;after;' || undefined);

    // Destroyed before the end of the turn: nothing is written, nothing throws.
    const e = await socketPair(t);
    writeOutSoon(e.side, 'never');
    e.side.destroy();
    await turnEnd();
    await e.closed;
    assert.equal(e.received(), '');
  });
});

test('many exchanges under way: held answers reach every client whole and in order, before a 400, a close or an HTTP/1.0 end', async (t) => {
  const backend = await startHoldingBackend(t, 'web-01');
  const lb = await startLb(
    t,
    await configWith({ servers: [{ name: 'web-01', port: backend.port }] }, { lb: { workers: 1 } }),
  );
  const host = `Host: lb.test\r\n`;
  // Four kinds of client, four of each, all waiting on the backend at once.
  const kinds = [
    // Pipelined: a request, then bytes that cannot be parsed (answered 400 after the first answer).
    (i: number) => `GET /pipelined-${i} HTTP/1.1\r\n${host}\r\nNOT HTTP\r\n\r\n`,
    // The client asks to close after the answer.
    (i: number) => `GET /close-${i} HTTP/1.1\r\n${host}Connection: close\r\n\r\n`,
    // HTTP/1.0 without keep-alive: closed after the answer.
    (i: number) => `GET /http10-${i} HTTP/1.0\r\n${host}\r\n`,
    // Keep-alive: the connection stays, and carries a second request.
    (i: number) => `GET /keep-${i} HTTP/1.1\r\n${host}\r\n`,
  ];
  const clients: { kind: number; i: number; client: RawClient }[] = [];
  for (let i = 0; i < 4; i++) {
    for (let kind = 0; kind < kinds.length; kind++) {
      const client = await RawClient.connect(t, lb.port);
      client.write(kinds[kind]!(i));
      clients.push({ kind, i, client });
    }
  }
  await waitFor('every request at the backend', () => backend.held.length === clients.length || undefined);
  const heldBefore = writesHeldSoFar();
  // Every answer in one go: the proxy reads them in the same turns, with 16 exchanges under way.
  while (backend.held.length > 0) backend.answer();

  for (const { kind, i, client } of clients) {
    const label = `${['pipelined', 'close', 'http10', 'keep'][kind]}-${i}`;
    if (kind === 3) {
      await client.until('web-01');
      client.write(`GET /again-${i} HTTP/1.1\r\n${host}\r\n`);
      await waitFor(
        'the second request at the backend',
        () => backend.held.some((h) => h.url === `/again-${i}`) || undefined,
      );
      backend.answer(`/again-${i}`);
      const text = await client.until(/web-01[\s\S]*web-01/);
      assert.equal((text.match(/HTTP\/1\.1 200 /g) ?? []).length, 2, `${label}: two answers`);
      assert.equal(client.closed, false, `${label}: the connection stays open`);
      continue;
    }
    const text = await client.untilClosed();
    // The bodies are `web-01` and the 400's text: no status line can hide in them.
    const statuses = [...text.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
    if (kind === 0) {
      assert.deepEqual(
        statuses,
        [200, 400],
        `${label}: the answer, then the 400 (got ${JSON.stringify(text)})`,
      );
      assert.ok(
        text.includes('\r\n\r\nweb-01HTTP/1.1 400 '),
        `${label}: the first answer whole, then the 400`,
      );
    } else {
      assert.deepEqual(statuses, [200], `${label}: one answer (got ${JSON.stringify(text)})`);
      assert.ok(text.endsWith('\r\n\r\nweb-01'), `${label}: the answer whole before the close`);
    }
  }
  assert.ok(
    !directRelayAvailable || writesHeldSoFar() > heldBefore,
    'the answers went through writeOutSoon (held to the end of the turn)',
  );
});

test('a frontend closing while held answers go out: every answer is whole before its connection closes', async (t) => {
  const backend = await startHoldingBackend(t, 'web-01');
  const lb = await startLb(
    t,
    await configWith({ servers: [{ name: 'web-01', port: backend.port }] }, { lb: { workers: 1 } }),
  );
  const clients: RawClient[] = [];
  for (let i = 0; i < 12; i++) {
    const client = await RawClient.connect(t, lb.port);
    client.write(`GET /drain-${i} HTTP/1.1\r\nHost: lb.test\r\n\r\n`);
    clients.push(client);
  }
  await waitFor('every request at the backend', () => backend.held.length === clients.length || undefined);
  const closing = lb.handle.close();
  while (backend.held.length > 0) backend.answer();
  for (const [i, client] of clients.entries()) {
    const text = await client.untilClosed();
    assert.match(text, /^HTTP\/1\.1 200 /, `client ${i}: answered (got ${JSON.stringify(text)})`);
    assert.ok(text.endsWith('\r\n\r\nweb-01'), `client ${i}: the answer whole before the close`);
  }
  await closing;
});

test('a frontend that begins to close in the turn an answer is held keeps that connection until the answer is out', async (t) => {
  if (
    skipUnless(t, directRelayAvailable ? undefined : "Node's stream binding (writes are held only with it)")
  )
    return;
  const backend = await startHoldingBackend(t, 'web-01');
  const lb = await startLb(
    t,
    await configWith({ servers: [{ name: 'web-01', port: backend.port }] }, { lb: { workers: 1 } }),
  );
  // Two exchanges under way (writes are held only then): `kept` waits at the backend throughout.
  const kept = await RawClient.connect(t, lb.port);
  kept.write('GET /kept HTTP/1.1\r\nHost: lb.test\r\n\r\n');
  const answered = await RawClient.connect(t, lb.port);
  answered.write('GET /answered HTTP/1.1\r\nHost: lb.test\r\n\r\n');
  await waitFor('both requests at the backend', () => backend.held.length === 2 || undefined);
  // The frontend begins to close at the end of the turn in which the proxy holds the answer to
  // /answered, before the held write goes out: the connection is idle then, with its answer held.
  let closing: Promise<void> | undefined;
  const realSetImmediate = globalThis.setImmediate;
  t.after(() => {
    globalThis.setImmediate = realSetImmediate;
  });
  globalThis.setImmediate = ((fn: (...a: unknown[]) => void, ...args: unknown[]) => {
    if (closing === undefined && fn.name === 'flushAllHeld') {
      realSetImmediate(() => (closing = lb.handle.close()));
    }
    return realSetImmediate(fn, ...args);
  }) as typeof setImmediate;
  const heldBefore = writesHeldSoFar();
  backend.answer('/answered');
  await waitFor('the frontend to begin closing', () => closing !== undefined || undefined);
  globalThis.setImmediate = realSetImmediate;
  assert.equal(writesHeldSoFar(), heldBefore + 1, 'the answer was held');
  const text = await answered.untilClosed();
  assert.match(text, /^HTTP\/1\.1 200 /);
  assert.ok(
    text.endsWith('\r\n\r\nweb-01'),
    `the answer whole before the close (got ${JSON.stringify(text)})`,
  );
  // The request still under way when closing began is answered too (and asked to close).
  backend.answer('/kept');
  const keptText = await kept.untilClosed();
  assert.match(keptText, /^HTTP\/1\.1 200 [\s\S]*Connection: close\r\n[\s\S]*web-01$/);
  await closing;
});
