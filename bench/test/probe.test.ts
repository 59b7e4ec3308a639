import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../test/helpers/index.js';
import { ChildGroup } from '../children.js';
import { HOST, httpGet, pollUntil } from '../net.js';

const SERVER = fileURLToPath(new URL('../probe/probe-server.js', import.meta.url));
const ANSWER = /^HTTP\/1\.1 200 OK\r\n[^]*?\r\n\r\nhello from web-01\n/;

for (const kind of ['node-http', 'llhttp']) {
  test(`server-cost probe, ${kind}: two requests sent at once on one connection get two answers`, async (t) => {
    const children = new ChildGroup();
    t.after(() => children.killAllNow());
    const port = await freePort();
    const child = children.spawn(kind, process.execPath, [SERVER, kind, String(port)]);
    await pollUntil('an answer', async () => (await httpGet(port, '/', 1000)).status === 200, 10_000, child);
    const text = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, HOST);
      let got = '';
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => {
        got += d;
        if (got.split('hello from web-01\n').length === 3) {
          socket.destroy();
          resolve(got);
        }
      });
      socket.on('error', reject);
      socket.setTimeout(5000, () => reject(new Error(`only this came back: ${JSON.stringify(got)}`)));
      socket.write('GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /again HTTP/1.1\r\nHost: a\r\n\r\n');
    });
    const [first, second] = text.split(/(?<=hello from web-01\n)/);
    assert.match(first!, ANSWER);
    assert.match(second!, ANSWER);
  });
}

test('server-cost probe: an unknown server kind is a usage error', async (t) => {
  const children = new ChildGroup();
  t.after(() => children.killAllNow());
  const child = children.spawn('bad', process.execPath, [SERVER, 'nginx', '1']);
  const status = await child.exited;
  assert.equal(status.code, 2);
  assert.match(child.tail(), /usage: probe-server\.js node-http\|llhttp PORT/);
});
