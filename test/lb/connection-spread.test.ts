/**
 * Client connections spread over a load balancer's workers by `spreadConnections`
 * (workers/connection-spread.ts): `lopsided` (the default) undoes a burst that landed all on one
 * worker, `even` keeps them even, `off` leaves them where they were accepted. The decision itself,
 * then through real sockets, with a worker that cannot accept (stopped with SIGSTOP) while a burst
 * of connections arrives, so that one worker takes them all from the shared socket and must hand
 * some of them over, with nothing the clients sent lost on the way.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LoadBalancerHandle } from '../../src/lb/load-balancer.js';
import type { SpreadMode } from '../../src/config/schema.js';
import {
  ConnectionSpread,
  LOPSIDED_MIN,
  LOPSIDED_RATIO,
  reportAtOnce,
  SHORT_LIVED_MS,
  spreadSlack,
} from '../../src/lb/workers/connection-spread.js';
import { waitFor } from '../helpers/index.js';
import { rawConfig, resolveTestConfig, startBackend, startLb } from './fixtures.js';
import { startRawBackend, startTcpLb } from './tcp-fixtures.js';

const BURST = 40;

/** The reports of several workers at once: [slot, count] each. */
function reports(spread: ConnectionSpread, f: number, counts: Array<[number, number]>): void {
  for (const [slot, n] of counts) spread.update(f, slot, n);
}

test('even: a worker hands new connections over while it holds more than its share, to the least loaded', () => {
  const spread = new ConnectionSpread(0, 'even');
  // No counts from the others yet: keep everything.
  assert.equal(spread.target(1, 100, 0), undefined);
  reports(spread, 1, [
    [0, 10],
    [1, 3],
    [2, 5],
  ]);
  // Within the slack of the least loaded (3 + 2): kept.
  assert.equal(spreadSlack(5, 3), 2);
  assert.equal(spread.target(1, 5, 0), undefined);
  // Beyond it: to worker 1, which counts one more each time, until it passes worker 2.
  const sent = Array.from({ length: 4 }, () => spread.target(1, 12, 0));
  assert.deepEqual(sent, [1, 1, 1, 2]);
  // A new report from worker 1 replaces what was counted for it.
  spread.update(1, 1, 3);
  assert.equal(spread.target(1, 12, 0), 1);
  // Workers that stop accepting on the frontend are no target any more.
  spread.update(1, 1, -1);
  spread.update(1, 2, -1);
  assert.equal(spread.target(1, 100, 0), undefined);
  // Another frontend is another count.
  assert.equal(spread.target(2, 12, 0), undefined);
  // A connection handed over here carries its sender's count: fresher than the report.
  reports(spread, 2, [
    [0, 0],
    [1, 0],
  ]);
  spread.heard(2, 1, 30);
  assert.equal(spread.target(2, 20, 0), undefined);
  // Large counts: a sixteenth of the sum as slack.
  assert.equal(spreadSlack(1000, 900), 118);
  spread.forget(2);
  assert.equal(spread.target(2, 100, 0), undefined);
  // Its own count in the report is left out.
  const alone = new ConnectionSpread(1, 'even');
  reports(alone, 3, [[1, 0]]);
  assert.equal(alone.target(3, 100, 0), undefined);
});

/** A burst of `n` new connections on worker 0 of `spread`: how many it kept, how many it handed to each slot. */
function burst(spread: ConnectionSpread, n: number): { kept: number; to: Map<number, number> } {
  let kept = 0;
  const to = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const slot = spread.target(1, kept, 0);
    if (slot === undefined) kept++;
    else to.set(slot, (to.get(slot) ?? 0) + 1);
  }
  return { kept, to };
}

test('lopsided: a worker hands new connections over only while another holds under an eighth of its count', () => {
  const spread = new ConnectionSpread(0, 'lopsided');
  reports(spread, 1, [[1, 0]]);
  // Too few to matter: kept, even against none.
  assert.equal(spread.target(1, LOPSIDED_MIN - 1, 0), undefined);
  // From LOPSIDED_MIN on, handed over while the other holds under an eighth.
  assert.equal(LOPSIDED_RATIO, 8);
  assert.deepEqual(
    Array.from({ length: 3 }, () => spread.target(1, 16, 0)),
    [1, 1, undefined],
    '16 against 0, then 1: handed over; against 2 (an eighth): kept',
  );
  // Uneven but not lopsided (50/7): kept, where `even` would hand over.
  reports(spread, 1, [[1, 7]]);
  assert.equal(spread.target(1, 50, 0), undefined);
  assert.equal(new ConnectionSpread(0, 'even').target(1, 50, 0), undefined, 'no counts: kept');
  const even = new ConnectionSpread(0, 'even');
  reports(even, 1, [[1, 7]]);
  assert.equal(even.target(1, 50, 0), 1);
  // A burst of 64 all on this worker ends 57/7; of 256, 227/29.
  const b64 = new ConnectionSpread(0, 'lopsided');
  reports(b64, 1, [[1, 0]]);
  assert.deepEqual(burst(b64, 64), { kept: 57, to: new Map([[1, 7]]) });
  const b256 = new ConnectionSpread(0, 'lopsided');
  reports(b256, 1, [[1, 0]]);
  assert.deepEqual(burst(b256, 256), { kept: 227, to: new Map([[1, 29]]) });
  // Three workers: the burst goes to both others, the least loaded first.
  const three = new ConnectionSpread(0, 'lopsided');
  reports(three, 1, [
    [1, 0],
    [2, 0],
  ]);
  const r = burst(three, 60);
  assert.equal(r.kept + r.to.get(1)! + r.to.get(2)!, 60);
  assert.ok(Math.abs(r.to.get(1)! - r.to.get(2)!) <= 1, `${[...r.to]}`);
  assert.ok(Math.min(r.to.get(1)!, r.to.get(2)!) * LOPSIDED_RATIO >= r.kept - LOPSIDED_RATIO, `${r.kept}`);
  // off: never.
  const off = new ConnectionSpread(0, 'off');
  reports(off, 1, [[1, 0]]);
  assert.equal(off.target(1, 1000, 0), undefined);
});

test('a count that fell by half is reported at once; other changes wait for the delay', () => {
  // All 64 closing: reported at 32, 16, 8, 4, 2 and 1; the last step waits for the delayed report.
  let last = 64;
  const sent: number[] = [];
  for (let n = 63; n >= 0; n--) {
    if (reportAtOnce(last, n)) sent.push((last = n));
  }
  assert.deepEqual(sent, [32, 16, 8, 4, 2, 1]);
  // Drifting counts, rising counts and small ones: not at once.
  assert.equal(reportAtOnce(40, 21), false);
  assert.equal(reportAtOnce(40, 80), false);
  assert.equal(reportAtOnce(1, 0), false);
  assert.equal(reportAtOnce(-1, 0), false, 'not reported yet');
});

test('short-lived connections stay where they were accepted while they keep closing', () => {
  const spread = new ConnectionSpread(0, 'even');
  reports(spread, 1, [[1, 0]]);
  for (let i = 0; i < 20; i++) spread.closed(1, 5, 1000 + i);
  assert.equal(spread.target(1, 50, 1020), undefined, 'connections of a few ms: kept');
  // None closed for a while: the ones coming may last, they are spread again.
  assert.equal(spread.target(1, 50, 1020 + SHORT_LIVED_MS), 1);
  // Long ones closing: spread.
  const long = new ConnectionSpread(0, 'even');
  reports(long, 1, [[1, 0]]);
  for (let i = 0; i < 20; i++) long.closed(1, 60_000, 1000 + i);
  assert.equal(long.target(1, 50, 1020), 1);
});

/** The pids of the load balancer's two workers. */
async function workerPids(handle: LoadBalancerHandle): Promise<[number, number]> {
  const workers = (await handle.status()).workers ?? [];
  assert.equal(workers.length, 2);
  return [workers[0]!.pid!, workers[1]!.pid!];
}

/**
 * BURST connections to `port`, each sending `first(i)` as soon as it is connected: the sockets,
 * what each received so far, and whether each has closed (all destroyed after the test).
 */
async function openBurst(
  t: TestContext,
  port: number,
  first: (i: number) => string,
): Promise<{ sockets: Socket[]; replies: string[]; closed: boolean[] }> {
  const replies: string[] = Array.from({ length: BURST }, () => '');
  const closed: boolean[] = Array.from({ length: BURST }, () => false);
  const sockets = await Promise.all(
    Array.from(
      { length: BURST },
      (_, i) =>
        new Promise<Socket>((resolve, reject) => {
          const s = connect(port, '127.0.0.1', () => {
            s.write(first(i));
            resolve(s);
          });
          s.setEncoding('latin1');
          s.on('data', (d: string) => (replies[i] += d));
          s.on('error', () => {});
          s.on('close', () => (closed[i] = true));
          s.once('error', reject);
        }),
    ),
  );
  t.after(() => {
    for (const s of sockets) s.destroy();
  });
  return { sockets, replies, closed };
}

/**
 * Stops worker 2, opens BURST connections to `port` that each send `first(i)` at once, lets worker
 * 1 take them all from the socket, then resumes worker 2. Returns the sockets and what each
 * received, collected until `done` holds for it.
 */
async function burstWhileOneWorkerStopped(
  t: TestContext,
  handle: LoadBalancerHandle,
  port: number,
  first: (i: number) => string,
  done: (reply: string) => boolean,
): Promise<{ sockets: Socket[]; replies: string[] }> {
  const [, second] = await workerPids(handle);
  process.kill(second, 'SIGSTOP');
  let resumed = false;
  t.after(() => {
    if (!resumed) process.kill(second, 'SIGCONT');
  });
  const { sockets, replies } = await openBurst(t, port, first);
  // Worker 1 accepts every connection (worker 2 cannot) and hands over those beyond its share.
  await sleep(500);
  process.kill(second, 'SIGCONT');
  resumed = true;
  await waitFor('every connection answered', () => replies.every(done), { timeout: 10_000 });
  return { sockets, replies };
}

/** Each worker's client connections now. */
async function perWorker(handle: LoadBalancerHandle): Promise<number[]> {
  return ((await handle.status()).workers ?? []).map((w) => w.connections);
}

/** An HTTP load balancer with two workers, spreadConnections as given (else the default), in front of one backend. */
async function httpLb(t: TestContext, spreadConnections?: SpreadMode) {
  const a = await startBackend(t, 'web-01');
  const raw = await rawConfig({ servers: [{ name: 'web-01', port: a.port }] });
  Object.assign(
    (raw['loadBalancers'] as Array<Record<string, unknown>>)[0]!,
    { workers: 2 },
    spreadConnections === undefined ? {} : { spreadConnections },
  );
  return { backend: a, lb: await startLb(t, resolveTestConfig(raw)) };
}

/**
 * A burst of HTTP requests on their own connections while worker 2 is stopped, through a load
 * balancer with `spreadConnections` as given (else the default): each is answered, and the
 * connections each worker holds then.
 */
async function httpBurst(t: TestContext, spreadConnections?: SpreadMode): Promise<number[]> {
  const { backend: a, lb } = await httpLb(t, spreadConnections);
  assert.equal(lb.config.loadBalancers[0]!.spreadConnections, spreadConnections ?? 'lopsided');
  const { replies } = await burstWhileOneWorkerStopped(
    t,
    lb.handle,
    lb.port,
    (i) => `GET /burst/${i} HTTP/1.1\r\nHost: lb\r\n\r\n`,
    (r) => r.endsWith('web-01'),
  );
  for (const r of replies) assert.match(r, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nweb-01$/);
  assert.equal(a.requests, BURST);
  return perWorker(lb.handle);
}

/** The same through a TCP frontend to an echo server: every byte sent first comes back. */
async function tcpBurst(t: TestContext, spreadConnections?: SpreadMode): Promise<number[]> {
  const echo = await startRawBackend(t, 'echo');
  const lb = await startTcpLb(t, {
    servers: [{ name: 'echo', port: echo.port }],
    workers: 2,
    ...(spreadConnections === undefined ? {} : { spreadConnections }),
  });
  const message = (i: number) => `hello from client ${i}\n`;
  const { replies } = await burstWhileOneWorkerStopped(t, lb.handle, lb.port, message, (r) =>
    r.endsWith('\n'),
  );
  replies.forEach((r, i) => assert.equal(r, message(i)));
  return perWorker(lb.handle);
}

/** `even`: both workers hold their share of the burst, within the slack. */
function assertEven(counts: number[]): void {
  assert.equal(counts[0]! + counts[1]!, BURST);
  const least = BURST / 2 - spreadSlack(BURST, 0);
  assert.ok(Math.min(...counts) >= least, `both workers hold at least ${least} of ${BURST}: ${counts}`);
}

// `lopsided`: worker 1 took all 40 and handed over while worker 2 held under an eighth of its
// count: 35/5, where `even` ends about 20/20.
const LOPSIDED_SPLIT = [BURST - BURST / 8, BURST / 8];

test('even, HTTP: a burst taken by one worker is spread over both, and every request on it is answered', async (t) => {
  assertEven(await httpBurst(t, 'even'));
});

test('even, TCP: a burst taken by one worker is spread over both, and every byte sent first goes through', async (t) => {
  assertEven(await tcpBurst(t, 'even'));
});

test('lopsided (the default), HTTP: a burst taken by one worker is handed over until the other holds an eighth', async (t) => {
  assert.deepEqual(await httpBurst(t), LOPSIDED_SPLIT);
});

test('lopsided (the default), TCP: a burst taken by one worker is handed over until the other holds an eighth', async (t) => {
  assert.deepEqual(await tcpBurst(t), LOPSIDED_SPLIT);
});

test('spreadConnections off: the worker that accepted a connection serves it', async (t) => {
  assert.deepEqual(await httpBurst(t, 'off'), [BURST, 0]);
});

test('connections handed over to a worker that dies before it takes them are served by another', async (t) => {
  const { lb } = await httpLb(t, 'even');
  const [, second] = await workerPids(lb.handle);
  process.kill(second, 'SIGSTOP');
  const { replies, closed } = await openBurst(
    t,
    lb.port,
    (i) => `GET /orphan/${i} HTTP/1.1\r\nHost: lb\r\n\r\n`,
  );
  // Worker 1 takes them all and hands its extra ones over; they queue for worker 2, stopped.
  await sleep(500);
  process.kill(second, 'SIGKILL');
  // Every connection ends up answered or closed: none is left waiting in the dead worker's queue.
  await waitFor(
    'every connection answered or closed',
    () => replies.every((r, i) => r.endsWith('web-01') || closed[i]),
    {
      timeout: 10_000,
    },
  );
  const answered = replies.filter((r) => r.endsWith('web-01')).length;
  // The one hand-over already written to the dead worker's channel is lost with it.
  assert.ok(answered >= BURST - 1, `${answered} of ${BURST} answered`);
});
