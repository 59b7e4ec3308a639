import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Backend } from '../../src/lb/backend/backend.js';
import { makeConfig } from './fixtures.js';

const servers = [
  { name: 'web-01', port: 8001 },
  { name: 'web-02', port: 8002 },
  { name: 'web-03', port: 8003 },
];

test('mode active-passive makes every server but the first a backup', async () => {
  const config = await makeConfig({ servers, mode: 'active-passive' });
  const backend = new Backend(config.backends[0]!, config.servers);
  assert.deepEqual(
    backend.servers.map((s) => [s.name, s.address, s.backup]),
    [
      ['web-01', '127.0.0.1:8001', false],
      ['web-02', '127.0.0.1:8002', true],
      ['web-03', '127.0.0.1:8003', true],
    ],
  );
  for (const s of backend.servers) s.up = true;
  assert.equal(
    backend.balancer.pick({ clientIp: '127.0.0.1', url: '/', header: () => undefined })?.name,
    'web-01',
  );
  assert.equal(
    backend.balancer.pick({ clientIp: '127.0.0.1', url: '/', header: () => undefined })?.name,
    'web-01',
  );
  backend.servers[0]!.up = false;
  assert.equal(
    backend.balancer.pick({ clientIp: '127.0.0.1', url: '/', header: () => undefined })?.name,
    'web-02',
  );
  backend.destroyAgents();
});

test('mode active-active keeps the backup flags of the config', async () => {
  const config = await makeConfig({
    servers: [servers[0]!, { ...servers[1]!, backup: true }, servers[2]!],
  });
  const backend = new Backend(config.backends[0]!, config.servers);
  assert.deepEqual(
    backend.servers.map((s) => s.backup),
    [false, true, false],
  );
  const status = backend.status();
  assert.equal(status.mode, 'active-active');
  assert.equal(status.servers[0]!.state, 'down');
  assert.equal(status.servers[0]!.check.lastResult, null);
  backend.destroyAgents();
});
