import assert from 'node:assert/strict';
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { tempDir, waitFor } from '../helpers/index.js';
import { type ConfigOptions, fetch, rawConfig, startBackend, TANDEM_BIN } from './fixtures.js';

interface Child {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Writes the config as tandem.yaml in a temp dir (JSON is YAML) and returns its path. */
async function writeConfig(
  t: TestContext,
  opts: ConfigOptions,
): Promise<{ file: string; raw: Record<string, unknown> }> {
  const dir = tempDir();
  t.after(dir.cleanup);
  const raw = await rawConfig(opts);
  const file = join(dir.path, 'tandem.yaml');
  writeFileSync(file, JSON.stringify(raw, null, 2));
  return { file, raw };
}

/** Runs `tandem <args>`; killed after the test if still running. */
function tandem(t: TestContext, args: string[]): Child {
  const proc = spawn(process.execPath, [TANDEM_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal }));
  });
  t.after(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
  });
  return { proc, stdout: () => out, stderr: () => err, exited };
}

function frontendPort(raw: Record<string, unknown>): number {
  return (raw['loadBalancers'] as Array<{ frontends: Array<{ port: number }> }>)[0]!.frontends[0]!.port;
}

test('tandem lb serves traffic, logs health changes, and exits 0 on SIGTERM', async (t) => {
  const a = await startBackend(t, 'web-01');
  const b = await startBackend(t, 'web-02');
  const { file, raw } = await writeConfig(t, {
    servers: [
      { name: 'web-01', port: a.port },
      { name: 'web-02', port: b.port },
    ],
  });
  const child = tandem(t, ['lb', '--name', 'lb-01', '-c', file]);
  const port = frontendPort(raw);
  await waitFor('ready line', () => child.stdout().includes(`ready on http://127.0.0.1:${port}`));
  assert.match(child.stdout(), /lb-01 info server web-01 is UP \(HTTP 200\)/);

  // Over one client connection, so through one worker (each worker balances its own requests).
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const served = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const r = await fetch(port, '/', { agent });
    assert.equal(r.status, 200);
    served.add(r.text);
  }
  assert.deepEqual([...served].sort(), ['web-01', 'web-02']);

  await b.stop();
  await waitFor('down line', () =>
    child.stderr().includes('lb-01 warn server web-02 is DOWN (3 failed checks: connect ECONNREFUSED)'),
  );

  child.proc.kill('SIGTERM');
  const { code, signal } = await child.exited;
  assert.equal(signal, null);
  assert.equal(code, 0, child.stderr());
  assert.match(child.stdout(), /stopping \(SIGTERM\)/);
  assert.match(child.stdout(), /stopped/);
});

test('under an orchestrator (IPC), tandem lb reports ready and state, and stops when the parent disconnects', async (t) => {
  const a = await startBackend(t, 'web-01');
  const b = await startBackend(t, 'web-02');
  const { file, raw } = await writeConfig(t, {
    servers: [
      { name: 'web-01', port: a.port },
      { name: 'web-02', port: b.port },
    ],
  });
  const proc = fork(TANDEM_BIN, ['lb', '--name', 'lb-01', '-c', file], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  proc.stdout!.resume();
  proc.stderr!.resume();
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  t.after(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
  });
  const messages: Array<{ type: string; address?: string; details?: Record<string, unknown> }> = [];
  proc.on('message', (m) => messages.push(m as (typeof messages)[number]));

  await waitFor('ready and state messages', () => messages.length >= 2);
  const port = frontendPort(raw);
  assert.equal(messages[0]!.type, 'ready');
  assert.equal(messages[0]!.address, `http://127.0.0.1:${port}`);
  assert.deepEqual(messages[1], {
    type: 'state',
    details: { servers: { 'web/web-01': 'up', 'web/web-02': 'up' } },
  });

  await b.stop();
  await waitFor('state message for web-02 down', () =>
    messages.some(
      (m) =>
        m.type === 'state' &&
        (m.details?.['servers'] as Record<string, string> | undefined)?.['web/web-02'] === 'down',
    ),
  );
  assert.equal((await fetch(port, '/')).text, 'web-01');

  proc.disconnect();
  assert.equal(await exited, 0);
});

test('tandem lb with its port in use exits non-zero with a clear message and no stack trace', async (t) => {
  const a = await startBackend(t, 'web-01');
  const { file, raw } = await writeConfig(t, { servers: [{ name: 'web-01', port: a.port }] });
  const port = frontendPort(raw);
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(port, '127.0.0.1', r));
  t.after(() => taken.close());

  const child = tandem(t, ['lb', '--name', 'lb-01', '-c', file]);
  const { code } = await child.exited;
  assert.equal(code, 1);
  assert.match(
    child.stderr(),
    new RegExp(
      `tandem: lb-01 frontend http: cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use`,
    ),
  );
  assert.doesNotMatch(child.stderr(), /\n\s+at /);
});

test('tandem lb with an unknown name lists the known ones', async (t) => {
  const { file } = await writeConfig(t, { servers: [{ name: 'web-01', port: 1 }] });
  const child = tandem(t, ['lb', '--name', 'lb-09', '-c', file]);
  const { code } = await child.exited;
  assert.equal(code, 2);
  assert.match(child.stderr(), /no load balancer named "lb-09" in the config \(known: lb-01\)/);
  assert.doesNotMatch(child.stderr(), /\n\s+at /);
});
