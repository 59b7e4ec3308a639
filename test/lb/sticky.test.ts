import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { describe, test } from 'node:test';
import { cookieValue } from '../../src/lb/balance/cookie-value.js';
import { waitFor } from '../helpers/index.js';
import { configWith } from './balance-fixtures.js';
import { fetch, startBackend, startLb, type TestBackend } from './fixtures.js';

const SET_COOKIE = /^TANDEMSRV=([A-Za-z0-9_-]{12}); Path=\/; HttpOnly; SameSite=Lax$/;

async function twoServers(t: Parameters<typeof startBackend>[0], stickyCookie: Record<string, unknown>) {
  const a = await startBackend(t, 'web-01');
  const b = await startBackend(t, 'web-02');
  const lb = await startLb(
    t,
    await configWith(
      {
        servers: [
          { name: 'web-01', port: a.port },
          { name: 'web-02', port: b.port },
        ],
      },
      { stickyCookie },
    ),
  );
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const get = async (cookie?: string) => {
    const r = await fetch(lb.port, '/', { agent, headers: cookie === undefined ? {} : { cookie } });
    assert.equal(r.status, 200);
    return { server: r.text, setCookie: r.headers['set-cookie'] };
  };
  return { a, b, lb, get };
}

describe('sticky sessions by an inserted cookie', () => {
  test('the cookie pins a client to its server; when that server goes down, the client moves and gets a new cookie', async (t) => {
    const { a, b, lb, get } = await twoServers(t, {});

    const first = await get();
    assert.equal(first.setCookie?.length, 1);
    const match = SET_COOKIE.exec(first.setCookie![0]!);
    assert.ok(match, `Set-Cookie: ${first.setCookie}`);
    const id = match[1]!;
    for (const secret of [String(a.port), String(b.port), '127.0.0.1', 'web-0'])
      assert.ok(!id.includes(secret), `the server id ${id} reveals nothing`);

    // Round robin alone would alternate; the cookie keeps the client on its server, set only once.
    const cookie = `theme=dark; TANDEMSRV=${id}; lang=en`;
    for (let i = 0; i < 6; i++)
      assert.deepEqual(await get(cookie), { server: first.server, setCookie: undefined });

    // Another client without the cookie gets the other server, and its own cookie.
    const second = await get();
    assert.notEqual(second.server, first.server);
    const otherId = SET_COOKIE.exec(second.setCookie![0]!)![1]!;
    assert.notEqual(otherId, id);

    // A cookie naming no server: balanced as usual, and a fresh cookie.
    const stale = await get('TANDEMSRV=not-a-server');
    assert.match(stale.setCookie![0]!, SET_COOKIE);

    // The pinned server goes down: the client moves to the other one and is pinned there.
    const home: TestBackend = first.server === a.name ? a : b;
    await home.stop();
    await waitFor(`${home.name} down`, async () => (await lb.server(home.name)).state === 'down');
    const moved = await get(cookie);
    assert.equal(moved.server, second.server);
    assert.equal(moved.setCookie?.[0], second.setCookie![0]);
    const newCookie = `TANDEMSRV=${otherId}`;
    for (let i = 0; i < 3; i++)
      assert.deepEqual(await get(newCookie), { server: second.server, setCookie: undefined });

    // The old server is back: the client stays where its cookie says.
    await home.restart();
    await waitFor(`${home.name} up`, async () => (await lb.server(home.name)).state === 'up');
    for (let i = 0; i < 3; i++)
      assert.deepEqual(await get(newCookie), { server: second.server, setCookie: undefined });
    assert.equal((await get(cookie)).server, home.name);
  });

  test('name and maxAge are configurable', async (t) => {
    const { get } = await twoServers(t, { name: 'SRVID', maxAge: '1h' });
    const r = await get();
    assert.match(
      r.setCookie![0]!,
      /^SRVID=[A-Za-z0-9_-]{12}; Path=\/; Max-Age=3600; HttpOnly; SameSite=Lax$/,
    );
    const value = r.setCookie![0]!.split(';')[0]!;
    for (let i = 0; i < 3; i++)
      assert.deepEqual(await get(value), { server: r.server, setCookie: undefined });
  });
});

describe('sticky sessions and maxconn', () => {
  test('a pinned server at its maxconn: the request goes elsewhere, and the client keeps its cookie', async (t) => {
    const a = await startBackend(t, 'web-01');
    const b = await startBackend(t, 'web-02');
    const lb = await startLb(
      t,
      await configWith(
        {
          servers: [
            { name: 'web-01', port: a.port },
            { name: 'web-02', port: b.port },
          ],
        },
        {
          stickyCookie: {},
          servers: [
            { name: 'web-01', maxconn: 1 },
            { name: 'web-02', maxconn: 1 },
          ],
        },
      ),
    );
    const first = await fetch(lb.port, '/');
    const cookie = first.headers['set-cookie']![0]!.split(';')[0]!;
    const home = first.text === a.name ? a : b;
    const held = fetch(lb.port, '/hold', { headers: { cookie } });
    await waitFor('the held request at its server', () => home.held.length === 1);
    const overflow = await fetch(lb.port, '/', { headers: { cookie } });
    assert.equal(overflow.status, 200);
    assert.notEqual(overflow.text, home.name);
    assert.equal(overflow.headers['set-cookie'], undefined, 'the client keeps its cookie');
    home.release();
    assert.equal((await held).text, home.name);
    await waitFor('a free slot', async () => (await lb.server(home.name)).inFlight === 0);
    const back = await fetch(lb.port, '/', { headers: { cookie } });
    assert.equal(back.text, home.name);
  });
});

describe('cookieValue', () => {
  test('finds one cookie among others, exact name, quotes and spaces removed', () => {
    assert.equal(cookieValue('a=1; b=2; c=3', 'b'), '2');
    assert.equal(cookieValue('a=1;b=2', 'b'), '2');
    assert.equal(cookieValue('b="quoted value"', 'b'), 'quoted value');
    assert.equal(cookieValue(' b = 2 ; c=3', 'b'), '2');
    assert.equal(cookieValue('bb=1; ab=2', 'b'), undefined);
    assert.equal(cookieValue('B=1', 'b'), undefined);
    assert.equal(cookieValue('b=1; b=2', 'b'), '1');
    assert.equal(cookieValue('b=', 'b'), '');
    assert.equal(cookieValue('novalue; b=x=y', 'b'), 'x=y');
    assert.equal(cookieValue('', 'b'), undefined);
  });
});
