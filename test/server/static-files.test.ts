import assert from 'node:assert/strict';
import { mkdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createStaticHandler } from '../../src/server/static-files.js';
import { tempDir } from '../helpers/index.js';
import { fetchRaw } from './fixtures.js';

const SECRET = 'TOP-SECRET-DO-NOT-SERVE';
/** What the stand-in application answers when the static handler passes a request on. */
const APP_MARKER = 'answered by the application';

describe('static files', () => {
  const dir = tempDir('tandem-static-');
  const root = join(dir.path, 'public');
  let server: Server;
  let port = 0;

  before(async () => {
    // Outside the root: files a traversal would reach.
    writeFileSync(join(dir.path, 'package.json'), `{"secret": "${SECRET}"}`);
    mkdirSync(join(dir.path, 'outside'));
    writeFileSync(join(dir.path, 'outside', 'secret.txt'), SECRET);
    // Inside the root.
    mkdirSync(join(root, 'sub', '.hidden'), { recursive: true });
    const files: Record<string, string | Buffer> = {
      'index.html': '<!doctype html><title>hi</title>',
      'style.css': 'body { color: red; }',
      'app.js': 'console.log(1);',
      'mod.mjs': 'export const x = 1;',
      'data.json': '{"a":1}',
      'logo.svg': '<svg xmlns="http://www.w3.org/2000/svg"/>',
      'img.png': Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      'photo.jpg': Buffer.from([0xff, 0xd8, 0xff]),
      'anim.gif': 'GIF89a',
      'pic.webp': 'RIFF....WEBP',
      'favicon.ico': Buffer.from([0, 0, 1, 0]),
      'notes.txt': 'plain text',
      'font.woff2': 'wOF2',
      'app.js.map': '{"version":3}',
      'blob.bin': Buffer.from([1, 2, 3]),
      'with space.txt': 'spaced',
      '.env': SECRET,
      'sub/page.html': '<p>sub</p>',
      'sub/.hidden/x.txt': SECRET,
      'big.bin': Buffer.alloc(3 * 1024 * 1024, 7),
    };
    for (const [name, content] of Object.entries(files)) writeFileSync(join(root, name), content);
    symlinkSync(join(dir.path, 'outside', 'secret.txt'), join(root, 'leak.txt'));
    symlinkSync(join(dir.path, 'outside'), join(root, 'leakdir'));
    symlinkSync(join(root, 'style.css'), join(root, 'alias.css'));
    symlinkSync(join(root, '.env'), join(root, 'env-link.txt'));

    const serveStatic = createStaticHandler(root);
    server = createServer((req, res) => {
      serveStatic(req, res).then(
        (served) => {
          if (served) return;
          res.writeHead(404, { 'content-type': 'text/plain' });
          res.end(APP_MARKER);
        },
        (err: Error) => {
          res.writeHead(500);
          res.end(err.message);
        },
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    dir.cleanup();
  });

  test('serves files with the content type of their extension', async () => {
    const expected: Record<string, string> = {
      '/index.html': 'text/html; charset=utf-8',
      '/style.css': 'text/css; charset=utf-8',
      '/app.js': 'text/javascript; charset=utf-8',
      '/mod.mjs': 'text/javascript; charset=utf-8',
      '/data.json': 'application/json; charset=utf-8',
      '/logo.svg': 'image/svg+xml; charset=utf-8',
      '/img.png': 'image/png',
      '/photo.jpg': 'image/jpeg',
      '/anim.gif': 'image/gif',
      '/pic.webp': 'image/webp',
      '/favicon.ico': 'image/x-icon',
      '/notes.txt': 'text/plain; charset=utf-8',
      '/font.woff2': 'font/woff2',
      '/app.js.map': 'application/json; charset=utf-8',
      '/blob.bin': 'application/octet-stream',
    };
    for (const [path, type] of Object.entries(expected)) {
      const res = await fetchRaw(port, path);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers['content-type'], type, path);
      assert.equal(res.headers['cache-control'], 'public, max-age=0, must-revalidate', path);
      assert.match(String(res.headers['etag']), /^W\/"[0-9a-f]+-[0-9a-f]+"$/, path);
      assert.ok(res.headers['last-modified'], path);
    }
    const css = await fetchRaw(port, '/style.css?v=3');
    assert.equal(css.body, 'body { color: red; }');
    assert.equal(css.headers['content-length'], String(css.body.length));
    assert.equal((await fetchRaw(port, '/with%20space.txt')).body, 'spaced');
    assert.equal((await fetchRaw(port, '/sub/page.html')).body, '<p>sub</p>');
    assert.equal((await fetchRaw(port, '/sub/../style.css')).body, 'body { color: red; }');
    assert.equal(
      (await fetchRaw(port, '/alias.css')).body,
      'body { color: red; }',
      'a symlink inside the root',
    );
  });

  test('streams a large file whole', async () => {
    const res = await fetchRaw(port, '/big.bin');
    assert.equal(res.status, 200);
    assert.equal(Number(res.headers['content-length']), 3 * 1024 * 1024);
    assert.equal(Buffer.byteLength(res.body, 'latin1'), 3 * 1024 * 1024);
  });

  test('ETag and Last-Modified give 304; If-None-Match takes precedence', async () => {
    const first = await fetchRaw(port, '/style.css');
    const etag = String(first.headers['etag']);
    const lastModified = String(first.headers['last-modified']);

    const byEtag = await fetchRaw(port, '/style.css', { headers: { 'if-none-match': etag } });
    assert.equal(byEtag.status, 304);
    assert.equal(byEtag.body, '');
    assert.equal(byEtag.headers['etag'], etag);
    assert.equal(byEtag.headers['cache-control'], 'public, max-age=0, must-revalidate');

    const inList = await fetchRaw(port, '/style.css', { headers: { 'if-none-match': `"other", ${etag}` } });
    assert.equal(inList.status, 304);
    const strongForm = await fetchRaw(port, '/style.css', { headers: { 'if-none-match': etag.slice(2) } });
    assert.equal(strongForm.status, 304, 'If-None-Match uses the weak comparison');

    const bySince = await fetchRaw(port, '/style.css', { headers: { 'if-modified-since': lastModified } });
    assert.equal(bySince.status, 304);
    const older = new Date(Date.parse(lastModified) - 60_000).toUTCString();
    assert.equal(
      (await fetchRaw(port, '/style.css', { headers: { 'if-modified-since': older } })).status,
      200,
    );
    assert.equal(
      (await fetchRaw(port, '/style.css', { headers: { 'if-modified-since': 'garbage' } })).status,
      200,
    );

    const mismatch = await fetchRaw(port, '/style.css', {
      headers: { 'if-none-match': '"nope"', 'if-modified-since': lastModified },
    });
    assert.equal(mismatch.status, 200, 'a non-matching If-None-Match wins over a matching If-Modified-Since');
    assert.equal(mismatch.body, 'body { color: red; }');
  });

  test('HEAD gives the headers without the body', async () => {
    const res = await fetchRaw(port, '/style.css', { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.body, '');
    assert.equal(res.headers['content-length'], String('body { color: red; }'.length));
    assert.equal(res.headers['content-type'], 'text/css; charset=utf-8');
  });

  test('a changed or removed file is seen at once (nothing is cached)', async () => {
    const file = join(root, 'changing.txt');
    writeFileSync(file, 'one');
    utimesSync(file, new Date(1_700_000_000_000), new Date(1_700_000_000_000));
    const first = await fetchRaw(port, '/changing.txt');
    assert.equal(first.body, 'one');
    writeFileSync(file, 'two!');
    const second = await fetchRaw(port, '/changing.txt', {
      headers: { 'if-none-match': String(first.headers['etag']) },
    });
    assert.equal(second.status, 200);
    assert.equal(second.body, 'two!');
    assert.notEqual(second.headers['etag'], first.headers['etag']);
    rmSync(file);
    const gone = await fetchRaw(port, '/changing.txt');
    assert.equal(gone.body, APP_MARKER);
  });

  test('what is not a file goes to the application', async () => {
    for (const path of ['/', '/sub', '/sub/', '/nope.css', '/style.css/', '/users/1', '//etc/passwd']) {
      const res = await fetchRaw(port, path);
      assert.equal(res.body, APP_MARKER, path);
    }
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      const res = await fetchRaw(port, '/style.css', { method });
      assert.equal(res.body, APP_MARKER, method);
    }
  });

  test('dotfiles are never served', async () => {
    for (const path of ['/.env', '/%2eenv', '/sub/.hidden/x.txt', '/sub/%2Ehidden/x.txt', '/env-link.txt']) {
      const res = await fetchRaw(port, path);
      assert.ok(!res.body.includes(SECRET), `${path} leaked the secret`);
      assert.equal(res.body, APP_MARKER, path);
    }
  });

  test('traversal attempts are refused and never leak a file', async () => {
    const attempts: Record<string, number> = {
      '/../package.json': 403,
      '/../../../../etc/passwd': 403,
      '/%2e%2e/%2e%2e/etc/passwd': 403,
      '/%2E%2E/package.json': 403,
      '/..%2fpackage.json': 403,
      '/..%2Fpackage.json': 403,
      '/sub/../../package.json': 403,
      '/sub/%2e%2e/%2e%2e/package.json': 403,
      '/leak.txt': 403,
      '/leakdir/secret.txt': 403,
      '/style.css%00.png': 400,
      '/%00': 400,
      '/..%00/package.json': 400,
      '/%E0%A4%A': 400,
      '/%zz': 400,
    };
    for (const [path, status] of Object.entries(attempts)) {
      const res = await fetchRaw(port, path);
      assert.equal(res.status, status, path);
      assert.ok(!res.body.includes(SECRET), `${path} leaked the secret`);
      assert.ok(!res.body.includes('root:'), `${path} leaked /etc/passwd`);
    }
    // Backslashes are ordinary name characters on POSIX: no file by that name, so the app answers.
    for (const path of ['/..%5cpackage.json', '/..\\package.json']) {
      const res = await fetchRaw(port, path);
      assert.ok(!res.body.includes(SECRET), `${path} leaked the secret`);
      assert.equal(res.status, 404, path);
    }
  });

  test('an absolute-form request target is served by its path', async () => {
    const res = await fetchRaw(port, `http://127.0.0.1:${port}/style.css`);
    assert.equal(res.body, 'body { color: red; }');
    const up = await fetchRaw(port, `http://127.0.0.1:${port}/../package.json`);
    assert.ok(!up.body.includes(SECRET));
  });
});
