import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderStatsPage } from '../../src/lb/stats/stats-page.js';
import type { LbStatus, ServerStatus } from '../../src/lb/stats/status.js';
import { waitFor } from '../helpers/index.js';
import { admin, adminPort } from './admin-fixtures.js';
import { fetch, makeConfig, startBackend, startLb } from './fixtures.js';

/** The `<tr>` of server `name` in the page (the row, not the whole page). */
function row(html: string, name: string): string {
  const m = new RegExp(`<tr class="[a-z]+"><td class="text">${name}</td>.*?</tr>`).exec(html);
  assert.ok(m, `no row for ${name} in:\n${html}`);
  return m[0];
}

/** The text of each cell of a row. */
function cells(tr: string): string[] {
  return [...tr.matchAll(/<td[^>]*>(.*?)<\/td>/g)].map((m) => m[1]!);
}

test('GET / and /stats on the stats port serve an HTML page with a row per server', async (t) => {
  const a = await startBackend(t, 'web-01');
  const b = await startBackend(t, 'web-02');
  const lb = await startLb(
    t,
    await makeConfig({
      servers: [
        { name: 'web-01', port: a.port, weight: 3 },
        { name: 'web-02', port: b.port },
      ],
    }),
  );
  for (let i = 0; i < 4; i++) await fetch(lb.port, '/');
  const held = fetch(lb.port, '/hold');
  await waitFor('the held request', () => a.held.length + b.held.length === 1);

  for (const path of ['/', '/stats']) {
    const page = await fetch(lb.statsPort, path);
    assert.equal(page.status, 200);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    assert.match(page.text, /^<!doctype html>/);
    assert.match(page.text, /<h2>Backend web<\/h2>/);
    assert.doesNotMatch(page.text, /<script/i);
  }
  const html = (await fetch(lb.statsPort, '/stats')).text;
  // server, address, state, weight, backup, current, total, 2xx, 3xx, 4xx, 5xx, failures, last check, checked at
  const r1 = cells(row(html, 'web-01'));
  const r2 = cells(row(html, 'web-02'));
  assert.equal(r1[1], `127.0.0.1:${a.port}`);
  assert.deepEqual(r1.slice(2, 5), ['up', '3', 'no']);
  assert.deepEqual(r2.slice(2, 5), ['up', '1', 'no']);
  const inFlight = Number(r1[5]) + Number(r2[5]);
  const total = Number(r1[6]) + Number(r2[6]);
  assert.equal(inFlight, 1);
  assert.equal(total, 5);
  assert.equal(Number(r1[7]) + Number(r2[7]), 4); // 2xx
  assert.match(r1[12]!, /^ok \(\d+ ms\)$/);
  assert.match(r1[13]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \(\d+\.\d s ago\)$/);
  a.release();
  b.release();
  assert.equal((await held).status, 200);

  // Operator states and health show in the state column.
  await admin(adminPort(lb.config), 'POST', '/backends/web/servers/web-01/drain');
  await admin(adminPort(lb.config), 'POST', '/backends/web/servers/web-02/disable');
  let page = (await fetch(lb.statsPort, '/')).text;
  assert.match(row(page, 'web-01'), /^<tr class="drain">.*<td class="text state">drain<\/td>/);
  assert.match(row(page, 'web-02'), /^<tr class="maint">.*<td class="text state">maint<\/td>/);
  await admin(adminPort(lb.config), 'POST', '/backends/web/servers/web-02/enable');
  await b.stop();
  await waitFor('web-02 down', async () => (await lb.server('web-02')).state === 'down');
  page = (await fetch(lb.statsPort, '/')).text;
  assert.match(row(page, 'web-02'), /^<tr class="down">.*<td class="text state">down<\/td>/);
  assert.match(cells(row(page, 'web-02'))[12]!, /^failed: connect ECONNREFUSED/);

  const json = await fetch(lb.statsPort, '/status');
  assert.equal(json.status, 200);
  assert.equal((JSON.parse(json.text) as LbStatus).backends[0]!.servers[0]!.adminState, 'drain');
  assert.equal((await fetch(lb.statsPort, '/nothing')).status, 404);
  assert.equal((await fetch(lb.statsPort, '/stats', { method: 'POST' })).status, 405);
});

test('the stats page escapes every value it shows', () => {
  const evil = '<script>alert("x")</script>&\'';
  const server: ServerStatus = {
    name: evil,
    address: `${evil}:80`,
    weight: 1,
    backup: false,
    state: 'down',
    adminState: 'ready',
    inFlight: 0,
    totalRequests: 0,
    responses: { '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 },
    failures: 0,
    check: {
      lastResult: 'fail',
      lastError: evil,
      lastCheckAt: '2026-01-01T00:00:00.000Z',
      lastDurationMs: 5,
      consecutive: 1,
    },
  } as ServerStatus;
  const status = {
    name: evil,
    pid: 1,
    frontends: [{ name: evil, address: evil, backend: evil }],
    backends: [{ name: evil, balance: evil, mode: 'active-active', queued: 0, servers: [server] }],
  } as unknown as LbStatus;
  const html = renderStatsPage(status, new Date('2026-01-01T00:00:01.000Z'));
  assert.doesNotMatch(html, /<script/);
  assert.doesNotMatch(html, /alert\("x"\)/);
  assert.match(html, /&lt;script&gt;alert\(&quot;x&quot;\)&lt;\/script&gt;&amp;&#39;/);
  assert.match(html, /<title>&lt;script&gt;/);
  assert.match(html, /failed: &lt;script&gt;.* \(5 ms\)/);
  assert.match(html, /2026-01-01T00:00:00\.000Z \(1\.0 s ago\)/);
});
