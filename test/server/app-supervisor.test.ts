import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import type { Logger } from '../../src/log.js';
import {
  type AppProcessStatus,
  AppSupervisor,
  type AppSupervisorOptions,
  appSupervisorOptions,
} from '../../src/server/app-supervisor.js';
import { freePorts, isAlive, tempDir, waitFor } from '../helpers/index.js';
import {
  consecutiveFreePorts,
  fetchRaw,
  STUBBORN_APP,
  TINY_APP,
  writeConfig,
  writeScript,
} from './fixtures.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };

interface TinyAnswer {
  pid: number;
  uptime: number;
  env: Record<string, string | null>;
}

async function ask(port: number): Promise<TinyAnswer> {
  return JSON.parse((await fetchRaw(port, '/')).body) as TinyAnswer;
}

/** A supervisor of the tiny app (or `source`) in a temp dir, stopped and cleaned after the test. */
async function supervise(
  t: import('node:test').TestContext,
  overrides: Partial<AppSupervisorOptions> & { source?: string } = {},
): Promise<{ supervisor: AppSupervisor; basePort: number; stdout: PassThrough; output: () => string }> {
  const dir = tempDir('tandem-apps-');
  t.after(dir.cleanup);
  writeScript(dir.path, 'app.mjs', overrides.source ?? TINY_APP);
  const basePort = await consecutiveFreePorts(overrides.processes ?? 1);
  const stdout = new PassThrough();
  let text = '';
  stdout.on('data', (c: Buffer) => {
    text += c.toString();
  });
  const supervisor = new AppSupervisor({
    command: ['node', 'app.mjs'],
    cwd: dir.path,
    host: '127.0.0.1',
    basePort,
    processes: 1,
    restart: { initialDelay: 100, maxDelay: 1000, resetAfter: 60_000 },
    stdout,
    stderr: stdout,
    log: quiet,
    ...overrides,
  });
  t.after(() => supervisor.stop());
  return { supervisor, basePort, stdout, output: () => text };
}

test('runs the processes with the environment contract and prefixed output', async (t) => {
  const { supervisor, basePort, output } = await supervise(t, {
    processes: 2,
    env: { TANDEM_SERVER_NAME: 'web-07', DATABASE_WRITER_URL: undefined, DATABASE_READER_URLS: undefined },
  });
  const changes: (readonly AppProcessStatus[])[] = [];
  supervisor.onChange((s) => changes.push(s));
  assert.deepEqual(supervisor.states(), ['stopped', 'stopped']);
  supervisor.start();
  assert.deepEqual(supervisor.states(), ['starting', 'starting']);
  assert.ok(await supervisor.whenAllRunning(10_000), 'both processes run');

  const pids = supervisor.pids();
  assert.equal(new Set(pids).size, 2);
  assert.deepEqual(
    supervisor.running().map((e) => e.port),
    [basePort, basePort + 1],
  );
  for (const i of [0, 1]) {
    const answer = await ask(basePort + i);
    assert.equal(answer.pid, pids[i]);
    assert.deepEqual(answer.env, {
      PORT: String(basePort + i),
      HOST: '127.0.0.1',
      TANDEM_SERVER_NAME: 'web-07',
      TANDEM_PROCESS_INDEX: String(i),
      DATABASE_WRITER_URL: null,
      DATABASE_READER_URLS: null,
    });
  }
  assert.ok(
    changes.some((s) => s.every((p) => p.state === 'running')),
    'a change reported both running',
  );

  await waitFor('both processes output', () => output().includes('[app#1] tiny app stderr line'));
  assert.match(output(), /^\[app#0\] tiny app listening on \d+$/m);
  assert.match(output(), /^\[app#1\] tiny app listening on \d+$/m);

  await supervisor.stop();
  assert.deepEqual(supervisor.states(), ['stopped', 'stopped']);
  assert.deepEqual(supervisor.pids(), [undefined, undefined]);
  for (const pid of pids) assert.equal(isAlive(pid!), false, `pid ${pid} is gone`);
  assert.deepEqual(supervisor.running(), []);
});

test('a killed process is restarted after a backoff that doubles up to maxDelay', async (t) => {
  const { supervisor, basePort } = await supervise(t, {
    restart: { initialDelay: 150, maxDelay: 600, resetAfter: 60_000 },
  });
  const backoffs: { delay: number; at: number }[] = [];
  const spawns: { pid: number; at: number }[] = [];
  let lastPid: number | undefined;
  supervisor.onChange(([p]) => {
    if (p!.state === 'backoff') backoffs.push({ delay: p!.restartDelay!, at: Date.now() });
    if (p!.state === 'starting' && p!.pid !== lastPid) spawns.push({ pid: p!.pid!, at: Date.now() });
    lastPid = p!.pid;
  });
  supervisor.start();
  assert.ok(await supervisor.whenAllRunning(10_000));

  const pids = [supervisor.pids()[0]!];
  for (let crash = 1; crash <= 4; crash++) {
    process.kill(pids.at(-1)!, 'SIGKILL');
    await waitFor(`restart ${crash}`, () => {
      const [p] = supervisor.status();
      return p!.state === 'running' && p!.pid !== pids.at(-1) && p!.pid;
    });
    const pid = supervisor.pids()[0]!;
    assert.equal((await ask(basePort)).pid, pid, 'the new process answers');
    pids.push(pid);
  }
  assert.deepEqual(
    backoffs.map((b) => b.delay),
    [150, 300, 600, 600],
  );
  // Each restart came no sooner than its delay after the crash.
  for (let i = 0; i < 4; i++) {
    assert.ok(
      spawns[i + 1]!.at - backoffs[i]!.at >= backoffs[i]!.delay - 2,
      `restart ${i + 1} waited its delay`,
    );
  }
  const [status] = supervisor.status();
  assert.equal(status!.restarts, 4);
  assert.equal(status!.consecutiveCrashes, 4);
  assert.equal(status!.lastExit, 'signal SIGKILL');
  assert.equal(new Set(pids).size, 5);
  for (const pid of pids.slice(0, -1)) assert.equal(isAlive(pid), false);
});

test('the delay goes back to initialDelay once a process stayed up resetAfter', async (t) => {
  const { supervisor, basePort } = await supervise(t, {
    restart: { initialDelay: 100, maxDelay: 5000, resetAfter: 400 },
  });
  const delays: number[] = [];
  supervisor.onChange(([p]) => {
    if (p!.state === 'backoff') delays.push(p!.restartDelay!);
  });
  supervisor.start();
  assert.ok(await supervisor.whenAllRunning(10_000));

  const crashAndRestart = async () => {
    const pid = supervisor.pids()[0]!;
    process.kill(pid, 'SIGKILL');
    await waitFor('restart', () => supervisor.states()[0] === 'running' && supervisor.pids()[0] !== pid);
  };
  // The first process has certainly been up 400 ms once it says so itself.
  await waitFor('uptime ≥ resetAfter', async () => (await ask(basePort)).uptime >= 450);
  await crashAndRestart(); // reset, then crash 1: 100
  await crashAndRestart(); // quick crash 2: 200
  await waitFor('uptime ≥ resetAfter', async () => (await ask(basePort)).uptime >= 450);
  await crashAndRestart(); // reset again: 100
  assert.deepEqual(delays, [100, 200, 100]);
});

test('stop() kills a process that ignores SIGTERM after stopTimeout', async (t) => {
  const { supervisor, output } = await supervise(t, { source: STUBBORN_APP, stopTimeout: 300 });
  supervisor.start();
  assert.ok(await supervisor.whenAllRunning(10_000));
  const pid = supervisor.pids()[0]!;
  const started = Date.now();
  await supervisor.stop();
  assert.ok(Date.now() - started >= 290, 'it waited for the SIGTERM to work');
  assert.equal(isAlive(pid), false);
  assert.equal(supervisor.status()[0]!.lastExit, 'signal SIGKILL');
  assert.equal(supervisor.states()[0], 'stopped');
  assert.match(output(), /\[app#0\] ignoring SIGTERM/);
});

test('a process that cannot start is retried with backoff, and stop() ends the retries', async (t) => {
  const { supervisor } = await supervise(t, {
    source: 'process.exit(3);\n',
    restart: { initialDelay: 20, maxDelay: 100, resetAfter: 60_000 },
  });
  supervisor.start();
  await waitFor('three crashes in a row', () => supervisor.status()[0]!.consecutiveCrashes >= 3);
  assert.equal(supervisor.status()[0]!.lastExit, 'exit code 3');
  await supervisor.stop();
  const [status] = supervisor.status();
  assert.equal(status!.state, 'stopped');
  assert.equal(status!.pid, undefined);
});

test('a missing executable is reported and retried, not thrown', async (t) => {
  const { supervisor } = await supervise(t, {
    command: ['/nonexistent/tandem-codebase'],
    restart: { initialDelay: 20, maxDelay: 20, resetAfter: 60_000 },
  });
  supervisor.start();
  await waitFor('a failed start', () => supervisor.status()[0]!.consecutiveCrashes >= 2);
  assert.match(supervisor.status()[0]!.lastExit ?? '', /could not start: .*ENOENT/);
});

test('a process that never listens is restarted after readyTimeout', async (t) => {
  const { supervisor } = await supervise(t, {
    source: 'setInterval(() => {}, 1000);\n',
    readyTimeout: 300,
    restart: { initialDelay: 20, maxDelay: 20, resetAfter: 60_000 },
  });
  supervisor.start();
  const first = await waitFor('a pid', () => supervisor.pids()[0]);
  await waitFor('a restart', () => supervisor.status()[0]!.restarts >= 1);
  assert.equal(isAlive(first), false);
  assert.notEqual(supervisor.states()[0], 'running');
});

test('appSupervisorOptions: command, directory and database URLs come from the config', async (t) => {
  const dir = tempDir('tandem-apps-config-');
  t.after(dir.cleanup);
  const [webPort, appPort, dbPort1, dbPort2] = await freePorts(4);
  const config = writeConfig(dir.path, {
    webPort: webPort!,
    appPort: appPort!,
    processes: 3,
    databasePorts: [dbPort1!, dbPort2!],
  });
  const opts = appSupervisorOptions(config, config.servers[0]!, quiet);
  assert.deepEqual(opts.command, ['node', 'app.mjs']);
  assert.equal(opts.cwd, dir.path);
  assert.equal(opts.basePort, appPort);
  assert.equal(opts.processes, 3);
  assert.equal(opts.env?.['TANDEM_SERVER_NAME'], 'web-01');
  // By default the codebase goes through the load balancer's writer and reader endpoints.
  assert.match(opts.env?.['DATABASE_WRITER_URL'] ?? '', /^postgres:\/\/app:[^@]+@127\.0\.0\.1:15400\/app$/);
  assert.match(opts.env?.['DATABASE_READER_URLS'] ?? '', /^postgres:\/\/app:[^@]+@127\.0\.0\.1:15401\/app$/);
  // Without the endpoints: straight to the nodes the config names primary and replica.
  const direct = writeConfig(dir.path, {
    webPort: webPort!,
    appPort: appPort!,
    databasePorts: [dbPort1!, dbPort2!],
    databaseEndpoints: false,
  });
  const directOpts = appSupervisorOptions(direct, direct.servers[0]!, quiet);
  assert.match(
    directOpts.env?.['DATABASE_WRITER_URL'] ?? '',
    new RegExp(`^postgres://app:[^@]+@127\\.0\\.0\\.1:${dbPort1}/app$`),
  );
  assert.match(
    directOpts.env?.['DATABASE_READER_URLS'] ?? '',
    new RegExp(`^postgres://app:[^@]+@127\\.0\\.0\\.1:${dbPort2}/app$`),
  );

  const noDb = writeConfig(dir.path, { webPort: webPort!, appPort: appPort! });
  const plain = appSupervisorOptions(noDb, noDb.servers[0]!, quiet);
  assert.equal(plain.env?.['DATABASE_WRITER_URL'], undefined);
  assert.ok('DATABASE_WRITER_URL' in (plain.env ?? {}), 'an inherited DATABASE_WRITER_URL is removed');
});
