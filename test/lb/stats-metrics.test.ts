import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { test } from 'node:test';
import { waitFor } from '../helpers/index.js';
import { admin, adminPort } from './admin-fixtures.js';
import { fetch, makeConfig, startBackend, startLb } from './fixtures.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Family {
  type: string;
  help: string;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE = new RegExp(
  `^(${NAME})(?:\\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*",?)*)\\})? (\\S+)$`,
);
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/**
 * Parses the Prometheus text exposition format strictly: HELP and TYPE before a family's
 * samples, every sample of a declared family (histograms: `_bucket`, `_sum`, `_count`), label
 * syntax, numeric values. Throws on the first line that breaks a rule.
 */
function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const help = /^# HELP (\S+) (.*)$/.exec(line);
    if (help) {
      assert.ok(!families.has(help[1]!), `HELP for ${help[1]} twice`);
      families.set(help[1]!, { type: '', help: help[2]!, samples: [] });
      continue;
    }
    const type = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      const f = families.get(type[1]!);
      assert.ok(f && f.type === '' && f.samples.length === 0, `TYPE of ${type[1]} must follow its HELP`);
      f.type = type[2]!;
      continue;
    }
    assert.ok(!line.startsWith('#'), `unexpected comment: ${line}`);
    const m = SAMPLE.exec(line);
    assert.ok(m, `not a valid sample line: ${line}`);
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    assert.ok(m[3] === 'NaN' || !Number.isNaN(value), `not a number: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!;
    const family =
      families.get(m[1]!) ??
      families.get(m[1]!.replace(/_(bucket|sum|count)$/, '')) ??
      assert.fail(`sample of an undeclared family: ${line}`);
    assert.ok(family.type !== '', `sample before TYPE: ${line}`);
    family.samples.push({ name: m[1]!, labels, value });
  }
  return families;
}

/** The value of the sample `name` with exactly these labels (among others absent). */
function value(families: Map<string, Family>, name: string, labels: Record<string, string>): number {
  const family = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ''));
  assert.ok(family, `no family for ${name}`);
  const s = family.samples.find(
    (x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v),
  );
  assert.ok(s, `no sample ${name}${JSON.stringify(labels)}`);
  return s.value;
}

async function scrape(port: number): Promise<Map<string, Family>> {
  const r = await fetch(port, '/metrics');
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  return parseExposition(r.text);
}

test('GET /metrics is valid Prometheus text with the load balancer metrics, and its counters move with traffic', async (t) => {
  const a = await startBackend(t, 'web-01');
  const b = await startBackend(t, 'web-02');
  const lb = await startLb(
    t,
    await makeConfig({
      servers: [
        { name: 'web-01', port: a.port, weight: 2 },
        { name: 'web-02', port: b.port },
      ],
    }),
  );
  const before = await scrape(lb.statsPort);
  const types = Object.fromEntries([...before].map(([name, f]) => [name, f.type]));
  for (const [name, type] of Object.entries({
    tandem_server_requests_total: 'counter',
    tandem_server_responses_total: 'counter',
    tandem_server_failures_total: 'counter',
    tandem_server_up: 'gauge',
    tandem_server_admin_state: 'gauge',
    tandem_server_weight: 'gauge',
    tandem_server_in_flight: 'gauge',
    tandem_server_check_success: 'gauge',
    tandem_server_check_timestamp_seconds: 'gauge',
    tandem_server_check_transitions_total: 'counter',
    tandem_backend_queue_length: 'gauge',
    tandem_http_request_duration_seconds: 'histogram',
    process_resident_memory_bytes: 'gauge',
  }))
    assert.equal(types[name], type, name);
  const web01 = { backend: 'web', server: 'web-01' };
  const web02 = { backend: 'web', server: 'web-02' };
  assert.equal(value(before, 'tandem_server_up', web01), 1);
  assert.equal(value(before, 'tandem_server_weight', web01), 2);
  assert.equal(value(before, 'tandem_server_check_success', web02), 1);
  assert.equal(value(before, 'tandem_backend_queue_length', { backend: 'web' }), 0);
  assert.equal(value(before, 'tandem_server_admin_state', { ...web01, state: 'ready' }), 1);
  assert.equal(value(before, 'tandem_server_admin_state', { ...web01, state: 'drain' }), 0);
  const requests0 = value(before, 'tandem_server_requests_total', web01);
  const ok0 = value(before, 'tandem_server_responses_total', { ...web01, code: '2xx' });

  // Over one client connection, so through one worker (each worker balances its own requests).
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  for (let i = 0; i < 6; i++) assert.equal((await fetch(lb.port, '/', { agent })).status, 200);
  const after = await scrape(lb.statsPort);
  assert.equal(value(after, 'tandem_server_requests_total', web01) - requests0, 4);
  assert.equal(value(after, 'tandem_server_responses_total', { ...web01, code: '2xx' }) - ok0, 4);
  assert.equal(value(after, 'tandem_server_requests_total', web02), 2);
  assert.equal(value(after, 'tandem_server_responses_total', { ...web02, code: '5xx' }), 0);
  assert.equal(value(after, 'tandem_http_request_duration_seconds_count', { backend: 'web' }), 6);
  assert.ok(value(after, 'tandem_http_request_duration_seconds_sum', { backend: 'web' }) > 0);

  // Buckets are cumulative, and +Inf is the count.
  const buckets = after
    .get('tandem_http_request_duration_seconds')!
    .samples.filter((s) => s.name.endsWith('_bucket'));
  const counts = buckets.map((s) => s.value);
  assert.deepEqual(
    counts,
    [...counts].sort((x, y) => x - y),
  );
  assert.equal(buckets.at(-1)!.labels['le'], '+Inf');
  assert.equal(buckets.at(-1)!.value, 6);

  // In flight, operator state and health move too.
  const held = fetch(lb.port, '/hold');
  await waitFor('the held request', () => a.held.length + b.held.length === 1);
  const holding = a.held.length === 1 ? web01 : web02;
  assert.equal(value(await scrape(lb.statsPort), 'tandem_server_in_flight', holding), 1);
  a.release();
  b.release();
  await held;
  assert.equal(value(await scrape(lb.statsPort), 'tandem_server_in_flight', holding), 0);

  await admin(adminPort(lb.config), 'POST', '/backends/web/servers/web-02/drain');
  const drained = await scrape(lb.statsPort);
  assert.equal(value(drained, 'tandem_server_admin_state', { ...web02, state: 'drain' }), 1);
  assert.equal(value(drained, 'tandem_server_admin_state', { ...web02, state: 'ready' }), 0);

  await b.stop();
  await waitFor('web-02 down', async () => (await lb.server('web-02')).state === 'down');
  const down = await scrape(lb.statsPort);
  assert.equal(value(down, 'tandem_server_up', web02), 0);
  assert.equal(value(down, 'tandem_server_check_success', web02), 0);
  assert.equal(value(down, 'tandem_server_check_transitions_total', { ...web02, to: 'down' }), 1);
  assert.equal(value(down, 'tandem_server_check_transitions_total', { ...web02, to: 'up' }), 0);
});

test('the latency histogram measures each request from its arrival to the end of its response', async (t) => {
  const a = await startBackend(t, 'web-01');
  const lb = await startLb(t, await makeConfig({ servers: [{ name: 'web-01', port: a.port }] }));
  const m0 = await scrape(lb.statsPort);
  const slow0 = value(m0, 'tandem_http_request_duration_seconds_bucket', { backend: 'web', le: '0.25' });
  const all0 = value(m0, 'tandem_http_request_duration_seconds_count', { backend: 'web' });

  const held = fetch(lb.port, '/hold');
  await waitFor('the held request', () => a.held.length === 1);
  // Keep the response pending for a while: the histogram must see that time.
  await new Promise((r) => setTimeout(r, 300));
  a.release();
  assert.equal((await held).status, 200);

  const m1 = await scrape(lb.statsPort);
  assert.equal(value(m1, 'tandem_http_request_duration_seconds_count', { backend: 'web' }) - all0, 1);
  assert.equal(
    value(m1, 'tandem_http_request_duration_seconds_bucket', { backend: 'web', le: '0.25' }),
    slow0,
  );
  assert.ok(value(m1, 'tandem_http_request_duration_seconds_sum', { backend: 'web' }) >= 0.3);
});
