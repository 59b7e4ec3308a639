/**
 * A node agent whose engine died and cannot be started again (here: another process took its
 * port) tries again after a delay that doubles (0.5 s, 1 s, 2 s, … up to 30 s), not at every look
 * at the cluster, and says when it will; once the cause is gone the node comes back on its own.
 */
import assert from 'node:assert/strict';
import { type Server, createServer } from 'node:net';
import { test } from 'node:test';
import { type DbNodeHandle, startDbNode } from '../../src/db/cluster/db-node.js';
import { createLogger } from '../../src/log.js';
import { tempDir, waitFor } from '../helpers/index.js';
import { primaryAndReplica } from '../helpers/stack.js';

test('an engine that cannot be restarted is tried again with a doubling delay, then comes back', async (t) => {
  const dir = tempDir();
  const { config, p2 } = await primaryAndReplica(dir.path);
  const handles: DbNodeHandle[] = [];
  let squatter: Server | undefined;
  t.after(async () => {
    squatter?.close();
    for (const h of handles.reverse()) await h.stop();
    dir.cleanup();
  });
  const errors: string[] = [];
  const log = createLogger('test');
  const logError = log.error.bind(log);
  log.error = (msg: string) => {
    errors.push(msg);
    logError(msg);
  };
  handles.push(await startDbNode(config, 'web-01', createLogger('test'), () => undefined));
  const steps: string[] = [];
  const replica = await startDbNode(config, 'web-02', log, (m) => steps.push(m));
  handles.push(replica);

  // The replica's engine dies, and its port is taken before the agent can start it again.
  process.kill(replica.engine.pid!, 'SIGKILL');
  const listen = () =>
    new Promise<Server | undefined>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(undefined));
      s.listen(p2, '127.0.0.1', () => resolve(s));
    });
  squatter = await waitFor('the replica port to be free for the squatter', listen, {
    timeout: 5000,
    interval: 5,
  });
  const restarts = () => steps.filter((s) => s.includes('restarting as a replica')).length;
  await waitFor('a failed restart', () => errors.some((e) => /trying again in 0.5 s/.test(e)));
  const first = restarts();
  await new Promise((r) => setTimeout(r, 3000));
  // 0.5 s, then 1 s, then 2 s: at most 3 more tries in 3 s (at every look, 250 ms apart: 12).
  const more = restarts() - first;
  assert.ok(more >= 1 && more <= 3, `${more} restarts in 3 s:\n  ${steps.join('\n  ')}`);
  assert.ok(
    errors.some((e) => /already in use.*trying again in 1 s/.test(e)),
    `the delay doubles and is said:\n  ${errors.join('\n  ')}`,
  );

  // The port is free again: the replica comes back by itself at its next try.
  squatter.close();
  squatter = undefined;
  await waitFor(
    'the replica running again',
    async () => (await replica.role().catch(() => null)) === 'replica',
    {
      timeout: 20_000,
      interval: 100,
    },
  );
});
