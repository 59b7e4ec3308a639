import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { test } from 'node:test';
import { waitFor } from '../helpers/index.js';
import { configWith } from './balance-fixtures.js';
import { fetch, startBackend, startLb } from './fixtures.js';

test('leastconn through the proxy: while one server holds a request, the next ones go to the other', async (t) => {
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
      { balance: 'leastconn' },
    ),
  );
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  t.after(() => agent.destroy());
  const held = fetch(lb.port, '/hold', { agent });
  const holder = await waitFor('the held request at a server', () =>
    a.held.length === 1 ? a : b.held.length === 1 ? b : undefined,
  );
  const other = holder === a ? b : a;
  // Round robin would alternate; least connections keeps away from the busy server.
  for (let i = 0; i < 4; i++) {
    const r = await fetch(lb.port, '/', { agent });
    assert.equal(r.status, 200);
    assert.equal(r.text, other.name);
  }
  assert.equal((await lb.server(holder.name)).inFlight, 1);
  holder.release();
  const r = await held;
  assert.equal(r.text, holder.name);
  await waitFor('no request in flight', async () => (await lb.server(holder.name)).inFlight === 0);
  // Both idle again: they take turns.
  const next = [(await fetch(lb.port, '/', { agent })).text, (await fetch(lb.port, '/', { agent })).text];
  assert.deepEqual(next.sort(), ['web-01', 'web-02']);
});

test('hash on a header through the proxy: one user, one server; a server going down moves only its users', async (t) => {
  const names = ['web-01', 'web-02', 'web-03'];
  const backends = await Promise.all(names.map((n) => startBackend(t, n)));
  const lb = await startLb(
    t,
    await configWith(
      { servers: backends.map((s) => ({ name: s.name, port: s.port })) },
      { balance: 'hash', hashOn: { type: 'header', name: 'X-User-Id' } },
    ),
  );
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const serverOf = async (user: string | undefined): Promise<string> => {
    const r = await fetch(lb.port, '/', { agent, headers: user === undefined ? {} : { 'x-user-id': user } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['set-cookie'], undefined, 'no cookie without stickyCookie');
    return r.text;
  };
  const users = Array.from({ length: 15 }, (_, i) => `user-${i}`);
  const home = new Map<string, string>();
  for (const user of users) {
    const first = await serverOf(user);
    home.set(user, first);
    for (let i = 0; i < 2; i++) assert.equal(await serverOf(user), first, user);
  }
  assert.ok(new Set(home.values()).size >= 2, 'users spread over several servers');
  // No header: round robin.
  const anonymous = [await serverOf(undefined), await serverOf(undefined), await serverOf(undefined)];
  assert.deepEqual(anonymous.sort(), names);

  const victim = home.get('user-0')!;
  await backends.find((s) => s.name === victim)!.stop();
  await waitFor(`${victim} down`, async () => (await lb.server(victim)).state === 'down');
  for (const user of users) {
    const now = await serverOf(user);
    if (home.get(user) === victim) assert.notEqual(now, victim);
    else assert.equal(now, home.get(user), `${user} stays on its server`);
  }
});
