/**
 * Slow start: a server that comes back up gets a growing share of the requests, through the load
 * balancer with real backends on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { test } from 'node:test';
import { SLOW_START_FLOOR, SlowStart } from '../../src/lb/backend/slow-start.js';
import { waitFor } from '../helpers/index.js';
import { fetch, startBackend, startLb } from './fixtures.js';
import { configWith } from './health-fixtures.js';

test('the ramp: from the floor to the full weight, linearly, then off', () => {
  const ramp = new SlowStart(1000);
  assert.equal(ramp.until, 0);
  ramp.begin(5000);
  assert.equal(ramp.until, 6000);
  assert.equal(ramp.weight(10, 5000), 10 * SLOW_START_FLOOR);
  assert.equal(ramp.weight(10, 5250), 2.5);
  assert.equal(ramp.weight(10, 5900), 9);
  assert.equal(ramp.until, 6000);
  assert.equal(ramp.weight(10, 6000), 10);
  assert.equal(ramp.until, 0, 'the ramp ends on the first read past its end');

  const off = new SlowStart(0);
  off.begin(5000);
  assert.equal(off.until, 0);
});

test('a server back up after being down ramps its share of requests up over slowStart', async (t) => {
  const a = await startBackend(t, 'web-01');
  const b = await startBackend(t, 'web-02');
  const slowStart = 2000;
  const lb = await startLb(
    t,
    await configWith(
      {
        servers: [
          { name: 'web-01', port: a.port },
          { name: 'web-02', port: b.port },
        ],
        healthCheck: { interval: 20, rise: 1, fall: 1 },
      },
      { slowStart: '2s' },
    ),
  );
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  /** Sequential requests for `ms`, `max` at most: the share web-02 answered. */
  const shareOfWeb02 = async (ms: number, max = 400) => {
    const counts = { 'web-01': 0, 'web-02': 0 } as Record<string, number>;
    const end = performance.now() + ms;
    for (let i = 0; i < max && performance.now() < end; i++) {
      const r = await fetch(lb.port, '/', { agent });
      assert.equal(r.status, 200);
      counts[r.text]!++;
    }
    return counts['web-02']! / (counts['web-01']! + counts['web-02']!);
  };

  // The initial state is not ramped: both servers take their full share from the start.
  assert.equal(await shareOfWeb02(5000, 20), 0.5);

  b.healthStatus = 500;
  await waitFor('web-02 down', async () => (await lb.server('web-02')).state === 'down');
  b.healthStatus = 200;
  await waitFor('web-02 up', async () => (await lb.server('web-02')).state === 'up', { interval: 5 });
  const upAt = performance.now();

  // First quarter of the ramp: its weight is 5 % to 25 % of web-01's, so well under half.
  const early = await shareOfWeb02(slowStart / 4);
  assert.ok(early > 0 && early < 0.3, `web-02's share early in the ramp: ${early.toFixed(2)}`);

  await waitFor('the ramp over', () => performance.now() - upAt > slowStart + 50, { timeout: slowStart * 2 });
  const late = await shareOfWeb02(200);
  assert.ok(late >= 0.4, `web-02's share after the ramp: ${late.toFixed(2)}`);
});
