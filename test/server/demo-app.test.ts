/**
 * The demo codebase (app/server.ts) without a running database: health, routing, validation and
 * the database-unavailable answers. Its database routes against a real PostgreSQL primary and
 * replica are covered by the whole-stack tests in test/e2e/.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { freePort, waitFor } from '../helpers/index.js';
import { fetchRaw, PACKAGE_ROOT } from './fixtures.js';

const APP = join(PACKAGE_ROOT, 'dist', 'app', 'server.js');

/** Starts one demo process with `env` on a free port; stopped (SIGTERM, exit 0 checked) after the test. */
async function startApp(t: TestContext, env: Record<string, string>) {
  const port = await freePort();
  const childEnv: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST: '127.0.0.1', ...env };
  for (const key of ['DATABASE_WRITER_URL', 'DATABASE_READER_URLS']) if (!(key in env)) delete childEnv[key];
  const child = spawn(process.execPath, [APP], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    output += c.toString();
  });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  await waitFor('the demo app to listen', () => fetchRaw(port, '/healthz'));
  /** SIGTERM, and the exit code. */
  const stop = async () => {
    child.kill('SIGTERM');
    const [code] = await exited;
    return code;
  };
  return { port, stop, output: () => output };
}

test('demo app without a database: health, routing, validation, 503 for data', async (t) => {
  const app = await startApp(t, { TANDEM_SERVER_NAME: 'web-09', TANDEM_PROCESS_INDEX: '1' });

  const health = await fetchRaw(app.port, '/healthz');
  assert.equal(health.status, 200);
  assert.equal(health.headers['x-served-by'], 'web-09');
  assert.equal(health.headers['content-type'], 'application/json; charset=utf-8');
  const body = JSON.parse(health.body) as Record<string, unknown>;
  assert.equal(body['status'], 'ok');
  assert.equal(body['server'], 'web-09');
  assert.equal(body['process'], 1);
  assert.equal(body['app'], 'up');
  assert.equal(body['db'], null);
  assert.equal((await fetchRaw(app.port, '/healthz', { method: 'HEAD' })).status, 200);

  const notFound = await fetchRaw(app.port, '/nothing/here');
  assert.equal(notFound.status, 404);
  assert.equal(notFound.headers['x-served-by'], 'web-09');
  assert.match(notFound.headers['content-type'] as string, /^text\/html/);
  const apiNotFound = await fetchRaw(app.port, '/api/nothing');
  assert.equal(apiNotFound.status, 404);
  assert.ok((JSON.parse(apiNotFound.body) as { error: string }).error);
  // Nothing the user typed reaches the page unescaped.
  const xss = await fetchRaw(app.port, '/%3Cscript%3Ealert(1)%3C/script%3E');
  assert.equal(xss.status, 404);
  assert.doesNotMatch(xss.body, /<script>/);

  const wrongMethod = await fetchRaw(app.port, '/api/users', { method: 'PUT' });
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.headers['allow'], 'GET, POST, HEAD');

  const post = (body: string | Buffer) =>
    fetchRaw(app.port, '/api/users', {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
    });
  const badJson = await post('{"name": ');
  assert.equal(badJson.status, 400);
  assert.match((JSON.parse(badJson.body) as { error: string }).error, /not JSON/);
  for (const fields of [
    {},
    { name: '', email: 'a@b' },
    { name: 'x'.repeat(101), email: 'a@b' },
    { name: 'Ada', email: 'no-at-sign' },
    { name: 'Ada', email: `${'x'.repeat(200)}@b` },
    { name: 42, email: 'a@b' },
    [],
  ]) {
    const res = await post(JSON.stringify(fields));
    assert.equal(res.status, 400, JSON.stringify(fields));
    assert.ok((JSON.parse(res.body) as { error: string }).error);
  }
  const tooLarge = await post(JSON.stringify({ name: 'Ada', email: `a@${'x'.repeat(70 * 1024)}` }));
  assert.equal(tooLarge.status, 413);

  // Valid requests need the database, which is not configured: 503, never a crash.
  const valid = await post(JSON.stringify({ name: 'Ada', email: 'ada@example.org' }));
  assert.equal(valid.status, 503);
  assert.deepEqual(JSON.parse(valid.body), { error: 'database unavailable' });
  assert.equal((await fetchRaw(app.port, '/api/users')).status, 503);
  assert.equal((await fetchRaw(app.port, '/api/users/abc', { method: 'DELETE' })).status, 400);
  assert.equal((await fetchRaw(app.port, '/api/users/12', { method: 'DELETE' })).status, 503);
  const page = await fetchRaw(app.port, '/');
  assert.equal(page.status, 503);
  assert.match(page.body, /Served by <strong>web-09<\/strong>/);
  assert.match(page.body, /href="\/style.css"/);

  assert.equal(await app.stop(), 0, app.output());
});

test('demo app with an unreachable database: health says down (503) and data routes answer 503', async (t) => {
  const [writerPort, readerPort] = [await freePort(), await freePort()];
  const app = await startApp(t, {
    TANDEM_SERVER_NAME: 'web-08',
    DATABASE_WRITER_URL: `postgres://app:secret@127.0.0.1:${writerPort}/app`,
    DATABASE_READER_URLS: `postgres://app:secret@127.0.0.1:${readerPort}/app`,
  });

  const health = await fetchRaw(app.port, '/healthz');
  assert.equal(health.status, 503);
  const body = JSON.parse(health.body) as Record<string, unknown>;
  assert.equal(body['status'], 'down');
  assert.equal(body['app'], 'up');
  assert.deepEqual(body['db'], { writer: 'down', reader: 'down' });

  const list = await fetchRaw(app.port, '/api/users');
  assert.equal(list.status, 503);
  assert.deepEqual(JSON.parse(list.body), { error: 'database unavailable' });
  assert.equal(list.headers['x-served-by'], 'web-08');
  const create = await fetchRaw(app.port, '/api/users', {
    method: 'POST',
    body: JSON.stringify({ name: 'Ada', email: 'ada@example.org' }),
  });
  assert.equal(create.status, 503);
  const form = await fetchRaw(app.port, '/users', {
    method: 'POST',
    body: 'name=Ada&email=ada%40example.org',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  assert.equal(form.status, 503);
  assert.match(form.body, /Database unavailable/);

  // Still alive and answering after all those failures.
  assert.equal((await fetchRaw(app.port, '/healthz')).headers['x-served-by'], 'web-08');
  assert.equal(await app.stop(), 0, app.output());
});
