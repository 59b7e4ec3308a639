/** Config of TCP mode: `frontends[].mode` and `backends[].servers[].address`. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { Backend } from '../../src/lb/backend/backend.js';

/** One web server, one load balancer, one backend; `servers` are the backend's. */
function raw(servers: unknown[], frontend: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    servers: [{ name: 'web-01', port: 18081, app: { port: 19101 } }],
    loadBalancers: [{ name: 'lb-01', frontends: [{ port: 18080, backend: 'db', ...frontend }] }],
    backends: [{ name: 'db', servers }],
  };
}

function problemsOf(config: unknown): string[] {
  try {
    validateConfig(config);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('config was accepted');
}

test('frontends[].mode defaults to http; tcp is accepted; anything else is named', () => {
  assert.equal(validateConfig(raw([{ name: 'web-01' }])).loadBalancers[0]!.frontends[0]!.mode, 'http');
  assert.equal(
    validateConfig(raw([{ name: 'web-01' }], { mode: 'tcp' })).loadBalancers[0]!.frontends[0]!.mode,
    'tcp',
  );
  assert.deepEqual(problemsOf(raw([{ name: 'web-01' }], { mode: 'udp' })), [
    'loadBalancers[0].frontends[0].mode: must be http or tcp (got "udp")',
  ]);
});

test('a backend server with an address needs no entry in servers; one without still does', () => {
  const config = validateConfig(
    raw([
      { name: 'pg-01', address: '10.0.0.5:5432' },
      { name: 'pg-02', address: '[::1]:5433' },
      { name: 'pg-03', address: 'db-03.internal:5434' },
      { name: 'web-01' },
    ]),
  );
  const backend = new Backend(config.backends[0]!, config.servers);
  assert.deepEqual(
    backend.servers.map((s) => [s.name, s.host, s.port, s.address]),
    [
      ['pg-01', '10.0.0.5', 5432, '10.0.0.5:5432'],
      ['pg-02', '::1', 5433, '[::1]:5433'],
      ['pg-03', 'db-03.internal', 5434, 'db-03.internal:5434'],
      ['web-01', '127.0.0.1', 18081, '127.0.0.1:18081'],
    ],
  );
  backend.destroyAgents();
  assert.deepEqual(problemsOf(raw([{ name: 'pg-01' }])), [
    'backends[0].servers[0].name: no server named "pg-01" in servers (known: web-01)',
  ]);
});

test('a malformed address is named with the expected form', () => {
  for (const address of ['10.0.0.5', '10.0.0.5:0', '10.0.0.5:70000', '::1:5432', 'a b:1', ':5432', 5432]) {
    assert.deepEqual(
      problemsOf(raw([{ name: 'pg-01', address }])).map((p) => p.replace(/ \(got .*\)$/, '')),
      ['backends[0].servers[0].address: must be host:port, like 10.0.0.5:5432 or [::1]:5432'],
      `address ${JSON.stringify(address)}`,
    );
  }
});
