/**
 * The README's quick start as a new user runs it: `tandem up` with no config file brings up the
 * built-in topology, and the URL it prints serves the demo page.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { DEFAULT_CONFIG } from '../../src/config/defaults.js';
import { skipUnless, tempDir, waitFor } from '../helpers/index.js';
import { TANDEM, UP_SUMMARY, processesMentioning } from '../helpers/stack.js';

function portFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

test('quick start: tandem up with the built-in topology serves the demo page at the URL it prints', async (t) => {
  const ports = [
    ...DEFAULT_CONFIG.servers.flatMap((s) => [s.port, s.app.port, s.app.port + 1]),
    ...DEFAULT_CONFIG.loadBalancers.flatMap((l) => [l.stats.port, ...l.frontends.map((f) => f.port)]),
    ...DEFAULT_CONFIG.database.nodes.flatMap((n) => [n.port, n.port + 10000]),
    15400, // the database writer and reader endpoints
    15401,
    8405, // the load balancer's admin API
  ];
  const busy: number[] = [];
  for (const p of ports) if (!(await portFree(p, '127.0.0.1'))) busy.push(p);
  if (
    skipUnless(t, busy.length ? `the default ports ${busy.join(', ')} are in use on this machine` : undefined)
  )
    return;

  const cwd = tempDir();
  let output = '';
  const child: ChildProcess = spawn(process.execPath, [TANDEM, 'up'], {
    cwd: cwd.path,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.after(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    for (const pid of processesMentioning(cwd.path)) process.kill(pid, 'SIGKILL');
    cwd.cleanup();
  });

  const started = Date.now();
  // The summary ends with the "Logs:" line; wait for all of it, not just its first line.
  await waitFor('the "Tandem is up" summary', () => UP_SUMMARY.test(output) || child.exitCode !== null, {
    timeout: 60_000,
  });
  assert.ok(output.includes('Tandem is up'), output);
  assert.ok(Date.now() - started < 60_000);
  assert.match(output, /built-in default/);
  const url = /(http:\/\/127\.0\.0\.1:8080\/)\s+site/.exec(output)?.[1];
  assert.ok(url, `the site URL is printed:\n${output}`);
  const res = await fetch(url);
  assert.equal(res.status, 200);
  const page = await res.text();
  assert.match(page, /<title>Users · Tandem demo<\/title>/);
  assert.match(res.headers.get('x-served-by') ?? '', /^web-0[12]$/);
  // The very first read, on a database created moments ago, is a replica's: the app's first read
  // waits (up to 500 ms) for a replica that has replayed the table it just created.
  assert.equal(res.headers.get('x-db-node'), 'web-02 (replica)');
  // And so do the next ones, from whichever app process.
  for (let i = 0; i < 4; i++) assert.equal((await fetch(url)).headers.get('x-db-node'), 'web-02 (replica)');

  child.kill('SIGINT'); // what Ctrl-C sends
  assert.equal(await exited, 0, output);
  await waitFor('no process left', () => processesMentioning(cwd.path).length === 0, { timeout: 10_000 });
});
