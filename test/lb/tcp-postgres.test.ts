/**
 * A real protocol through TCP mode: a PostgreSQL node started by Tandem's own code, reached by a
 * `pg` client through a `mode: tcp` frontend whose backend server is given by `address`.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { loadConfig } from '../../src/config/load.js';
import { type DbNodeHandle, startDbNode } from '../../src/db/cluster/db-node.js';
import { readSecret } from '../../src/db/secrets.js';
import { type LoadBalancerHandle, startLoadBalancer } from '../../src/lb/load-balancer.js';
import { freePorts, tempDir } from '../helpers/index.js';
import { writeConfig } from '../helpers/stack.js';
import { memoryLogger } from './fixtures.js';

test('a pg client queries PostgreSQL through a TCP frontend', { timeout: 120_000 }, async (t) => {
  const dir = tempDir();
  // One teardown, in order: clients, load balancer, database, files.
  const clients: pg.Client[] = [];
  const running: { lb?: LoadBalancerHandle; node?: DbNodeHandle } = {};
  t.after(async () => {
    for (const c of clients) await c.end().catch(() => undefined);
    await running.lb?.close();
    await running.node?.stop();
    dir.cleanup();
  });
  const [dbPort, apiPort, frontend, stats, admin, web, app] = await freePorts(7);
  const file = writeConfig(dir.path, {
    servers: [{ name: 'web-01', port: web, app: { port: app, processes: 1 } }],
    loadBalancers: [
      {
        name: 'lb-01',
        frontends: [{ name: 'writer', port: frontend, backend: 'db', mode: 'tcp' }],
        stats: { port: stats },
        admin: { port: admin, token: 'test-admin-token-0123456789' },
      },
    ],
    backends: [
      {
        name: 'db',
        healthCheck: { type: 'tcp', interval: 200, rise: 1, fall: 1 },
        // Not a server of `servers`: the database node, by address.
        servers: [{ name: 'db-01', address: `127.0.0.1:${dbPort}` }],
      },
    ],
    database: {
      // This test builds its own TCP frontend; the derived writer/reader ones are tested elsewhere.
      endpoints: { enabled: false },
      nodes: [{ name: 'db-01', port: dbPort, apiPort, role: 'primary' }],
    },
  });
  const config = loadConfig({ file, dataDir: join(dir.path, 'data') });
  const log = memoryLogger();
  running.node = await startDbNode(config, 'db-01', log, () => undefined);
  const lb = await startLoadBalancer(config, 'lb-01', log, { drainTimeout: 1000 });
  running.lb = lb;
  for (let i = 0; i < 2; i++) {
    const client = new pg.Client({
      host: '127.0.0.1',
      port: frontend,
      user: 'postgres',
      password: readSecret(config.paths.dataDir, 'db-superuser')!,
      database: 'postgres',
    });
    clients.push(client);
    await client.connect();
  }
  const r = await clients[0]!.query('SELECT inet_server_port() AS port, $1::text AS echo', [
    'through tandem',
  ]);
  assert.deepEqual(r.rows[0], { port: dbPort, echo: 'through tandem' });
  // A few thousand rows back: more than one TCP segment each way.
  const big = await clients[1]!.query('SELECT g, md5(g::text) AS h FROM generate_series(1, 5000) AS g');
  assert.equal(big.rows.length, 5000);
  assert.equal(big.rows[4999].h, createHash('md5').update('5000').digest('hex'));

  const server = (await lb.status()).backends[0]!.servers[0]!;
  assert.equal(server.address, `127.0.0.1:${dbPort}`);
  assert.equal(server.state, 'up');
  assert.equal(server.totalConnections, 2);
  assert.equal(server.inFlight, 2);
});
