import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ComponentMessage } from '../../src/orchestrator/messages.js';
import { freePort, isAlive, tempDir, waitFor } from '../helpers/index.js';
import { consecutiveFreePorts, fetchRaw, PACKAGE_ROOT, writeConfig } from './fixtures.js';

const TANDEM = join(PACKAGE_ROOT, 'bin', 'tandem.js');

/** Runs `tandem …` to completion; resolves with its exit code and output. */
async function tandem(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [TANDEM, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

test('tandem server runs the demo codebase, reports over IPC, and stops cleanly on SIGTERM', async (t) => {
  const dir = tempDir('tandem-cli-server-');
  t.after(dir.cleanup);
  const webPort = await freePort();
  const config = writeConfig(dir.path, {
    webPort,
    appPort: await consecutiveFreePorts(2),
    command: ['node', 'dist/app/server.js'],
    codebaseDir: PACKAGE_ROOT,
    staticDir: join(PACKAGE_ROOT, 'app', 'public'),
  });

  const messages: ComponentMessage[] = [];
  let output = '';
  const child: ChildProcess = spawn(
    process.execPath,
    [TANDEM, 'server', '--name', 'web-01', '-c', config.source],
    {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    },
  );
  child.stdout!.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr!.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.on('message', (m) => messages.push(m as ComponentMessage));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  let appPids: number[] = [];
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    for (const pid of appPids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  });

  const ready = await waitFor(
    'the ready message',
    () => messages.find((m): m is Extract<ComponentMessage, { type: 'ready' }> => m.type === 'ready'),
    { timeout: 20_000 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}\noutput:\n${output}`);
  });
  assert.equal(ready.address, `http://127.0.0.1:${webPort}`);
  assert.deepEqual(messages[0], { type: 'progress', message: 'starting 2 application processes' });
  const states = messages.filter(
    (m): m is Extract<ComponentMessage, { type: 'state' }> => m.type === 'state',
  );
  const last = states.at(-1)!.details as { appPids: number[]; appStates: string[] };
  assert.deepEqual(last.appStates, ['running', 'running']);
  appPids = last.appPids;
  assert.equal(appPids.length, 2);
  assert.ok(appPids.every((p) => typeof p === 'number' && isAlive(p)));

  // Static from the codebase's public dir, served by the web server itself.
  const css = await fetchRaw(webPort, '/style.css');
  assert.equal(css.status, 200);
  assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');
  assert.equal(css.headers['x-served-by'], 'web-01');
  const icon = await fetchRaw(webPort, '/favicon.svg');
  assert.equal(icon.headers['content-type'], 'image/svg+xml; charset=utf-8');
  // Everything else from the demo app's processes.
  const health = await fetchRaw(webPort, '/healthz');
  assert.equal(health.status, 200, health.body);
  assert.equal(health.headers['x-served-by'], 'web-01');
  const body = JSON.parse(health.body) as { server: string; pid: number; app: string; db: unknown };
  assert.equal(body.server, 'web-01');
  assert.equal(body.app, 'up');
  assert.equal(body.db, null);
  assert.ok(appPids.includes(body.pid));

  // A crash is reported as a state change with the new pid.
  process.kill(appPids[0]!, 'SIGKILL');
  const restarted = await waitFor('a state with a new pid', () => {
    const s = messages.filter((m) => m.type === 'state').at(-1) as Extract<
      ComponentMessage,
      { type: 'state' }
    >;
    const d = s.details as { appPids: (number | null)[]; appStates: string[] };
    return d.appStates[0] === 'running' && d.appPids[0] !== appPids[0] ? d.appPids[0] : undefined;
  });
  appPids = [restarted, appPids[1]!];

  child.kill('SIGTERM');
  const [code, signal] = await exited;
  assert.equal(signal, null);
  assert.equal(code, 0, output);
  for (const pid of appPids) assert.equal(isAlive(pid), false, `app pid ${pid} outlived the server`);
  await assert.rejects(fetchRaw(webPort, '/healthz'), /ECONNREFUSED/);
});

test('the demo processes do not outlive a tandem server killed with SIGKILL', async (t) => {
  const dir = tempDir('tandem-cli-server-');
  t.after(dir.cleanup);
  const config = writeConfig(dir.path, {
    webPort: await freePort(),
    appPort: await consecutiveFreePorts(2),
    command: ['node', 'dist/app/server.js'],
    codebaseDir: PACKAGE_ROOT,
  });
  const messages: ComponentMessage[] = [];
  const child = spawn(process.execPath, [TANDEM, 'server', '--name', 'web-01', '-c', config.source], {
    stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
  });
  child.on('message', (m) => messages.push(m as ComponentMessage));
  const exited = once(child, 'exit');
  let appPids: number[] = [];
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    for (const pid of appPids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  });
  const ready = await waitFor(
    'ready',
    () => messages.find((m): m is Extract<ComponentMessage, { type: 'ready' }> => m.type === 'ready'),
    { timeout: 20_000 },
  );
  appPids = ready.details?.['appPids'] as number[];
  assert.equal(appPids.length, 2);

  child.kill('SIGKILL');
  await exited;
  await waitFor('the orphaned processes to stop', () => appPids.every((pid) => !isAlive(pid)), {
    timeout: 10_000,
  });
});

test('tandem server: a missing or unknown --name is a usage error listing the known names', async (t) => {
  const dir = tempDir('tandem-cli-server-');
  t.after(dir.cleanup);
  const config = writeConfig(dir.path, { webPort: await freePort(), appPort: await consecutiveFreePorts(2) });

  const unknown = await tandem(['server', '--name', 'web-99', '-c', config.source]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /no server named "web-99".*known: web-01, web-02/);
  assert.doesNotMatch(unknown.stderr, /\n\s+at /, 'no stack trace');

  const missing = await tandem(['server', '-c', config.source]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--name is required \(known: web-01, web-02\)/);

  const help = await tandem(['server', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /usage: tandem server --name NAME/);
});
