import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { PortInUseError, UsageError } from '../../src/errors.js';
import type { Logger } from '../../src/log.js';
import { type ServerStatus, startServer } from '../../src/server/server.js';
import { freePort, isAlive, tempDir, waitFor } from '../helpers/index.js';
import { consecutiveFreePorts, fetchRaw, TINY_APP, writeConfig, writeScript } from './fixtures.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const sink = () => new PassThrough().resume();

test('startServer: static files, forwarding to the processes, restart, clean close', async (t) => {
  const dir = tempDir('tandem-server-');
  t.after(dir.cleanup);
  writeScript(dir.path, 'app.mjs', TINY_APP);
  mkdirSync(join(dir.path, 'public'));
  writeFileSync(join(dir.path, 'public', 'hello.txt'), 'hello from the codebase');
  const config = writeConfig(dir.path, {
    webPort: await freePort(),
    appPort: await consecutiveFreePorts(2),
    restart: { initialDelay: 50, maxDelay: 50, resetAfter: 60_000 },
  });

  const handle = await startServer(config, 'web-01', quiet, { stdout: sink(), stderr: sink() });
  let closed = false;
  t.after(async () => {
    if (!closed) await handle.close();
  });
  const changes: ServerStatus[] = [];
  handle.onChange((s) => changes.push(s));
  assert.equal(handle.address, `http://127.0.0.1:${config.servers[0]!.port}`);
  assert.ok(await handle.whenAppsRunning(10_000));

  const status = handle.status();
  assert.deepEqual(status.appStates, ['running', 'running']);
  assert.equal(status.appPids.length, 2);
  const port = config.servers[0]!.port;

  const file = await fetchRaw(port, '/hello.txt');
  assert.equal(file.body, 'hello from the codebase');
  assert.equal(file.headers['x-served-by'], 'web-01');

  const answered = new Set<number>();
  for (let i = 0; i < 4; i++) {
    const res = await fetchRaw(port, '/api/anything');
    assert.equal(res.headers['x-served-by'], 'web-01');
    const body = JSON.parse(res.body) as { pid: number; env: Record<string, string> };
    assert.equal(body.env['TANDEM_SERVER_NAME'], 'web-01');
    answered.add(body.pid);
  }
  assert.deepEqual([...answered].sort(), [...(status.appPids as number[])].sort(), 'both processes answered');

  // A crashed process is restarted, and the change is reported.
  const victim = status.appPids[0]!;
  process.kill(victim, 'SIGKILL');
  await waitFor('the restart', () => {
    const s = handle.status();
    return s.appStates[0] === 'running' && s.appPids[0] !== victim;
  });
  assert.ok(changes.some((s) => s.appStates[0] === 'backoff'));
  assert.ok(isAlive(handle.status().appPids[0]!));

  const pids = handle.status().appPids as number[];
  await handle.close();
  closed = true;
  for (const pid of pids) assert.equal(isAlive(pid), false, `app pid ${pid} is gone`);
  assert.deepEqual(handle.status().appStates, ['stopped', 'stopped']);
  await assert.rejects(fetchRaw(port, '/hello.txt'), /ECONNREFUSED/);
});

test('startServer: an unknown name lists the known ones; a busy port fails before any process starts', async (t) => {
  const dir = tempDir('tandem-server-');
  t.after(dir.cleanup);
  writeScript(dir.path, 'app.mjs', TINY_APP);
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => blocker.close(resolve)));
  const busyPort = (blocker.address() as { port: number }).port;
  const appPort = await consecutiveFreePorts(2);
  const config = writeConfig(dir.path, { webPort: busyPort, appPort });

  await assert.rejects(startServer(config, 'web-99', quiet), (err: unknown) => {
    assert.ok(err instanceof UsageError);
    assert.match(err.message, /no server named "web-99".*\(known: web-01, web-02\)/);
    return true;
  });
  await assert.rejects(startServer(config, 'web-01', quiet), PortInUseError);
  // Nothing was spawned: the application port is still free.
  await new Promise<void>((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(appPort, '127.0.0.1', () => probe.close(() => resolve()));
  });
});
