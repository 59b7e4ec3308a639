import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

function config(backend: Record<string, unknown>): Record<string, unknown> {
  return {
    servers: [
      { name: 'web-01', port: 18081, app: { port: 19101 } },
      { name: 'web-02', port: 18082, app: { port: 19201 } },
    ],
    loadBalancers: [{ name: 'lb-01', frontends: [{ port: 18080, backend: 'web' }] }],
    backends: [{ name: 'web', servers: [{ name: 'web-01' }, { name: 'web-02' }], ...backend }],
  };
}

function problemsOf(backend: Record<string, unknown>): string[] {
  try {
    validateConfig(config(backend));
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err.problems.flatMap((p) => p.split('\n  - '));
  }
  assert.fail('config was accepted');
}

test('defaults: roundrobin, no hashOn, allBackups false, preempt true, no sticky cookie', () => {
  const b = validateConfig(config({})).backends[0]!;
  assert.equal(b.balance, 'roundrobin');
  assert.equal(b.hashOn, undefined);
  assert.equal(b.allBackups, false);
  assert.equal(b.preempt, true);
  assert.equal(b.stickyCookie, undefined);
});

test('every algorithm is accepted; an unknown one is named with the list', () => {
  for (const balance of ['roundrobin', 'static-rr', 'leastconn', 'first', 'source', 'random'])
    assert.equal(validateConfig(config({ balance })).backends[0]!.balance, balance);
  assert.deepEqual(problemsOf({ balance: 'least_conn' }), [
    'backends[0].balance: must be one of: roundrobin, static-rr, leastconn, first, source, hash, random (got "least_conn")',
  ]);
});

test('hash needs hashOn; a header or cookie needs its name; hashOn goes with hash only', () => {
  const on = (hashOn: unknown) => validateConfig(config({ balance: 'hash', hashOn })).backends[0]!.hashOn;
  assert.deepEqual(on({ type: 'uri' }), { type: 'uri' });
  assert.deepEqual(on({ type: 'header', name: 'X-User-Id' }), { type: 'header', name: 'X-User-Id' });
  assert.deepEqual(on({ type: 'cookie', name: 'session' }), { type: 'cookie', name: 'session' });
  assert.deepEqual(problemsOf({ balance: 'hash' }), [
    'backends[0].hashOn: is required with balance: hash (like hashOn: { type: header, name: X-User-Id })',
  ]);
  assert.deepEqual(problemsOf({ balance: 'hash', hashOn: { type: 'header' } }), [
    'backends[0].hashOn.name: is required with hashOn.type: header',
  ]);
  assert.deepEqual(problemsOf({ balance: 'hash', hashOn: { type: 'cookie' } }), [
    'backends[0].hashOn.name: is required with hashOn.type: cookie',
  ]);
  assert.deepEqual(problemsOf({ balance: 'hash', hashOn: { type: 'uri', name: 'x' } }), [
    'backends[0].hashOn.name: not used with hashOn.type: uri (the path is hashed)',
  ]);
  assert.deepEqual(problemsOf({ hashOn: { type: 'uri' } }), [
    'backends[0].hashOn: only applies to balance: hash (balance is roundrobin)',
  ]);
  assert.deepEqual(problemsOf({ balance: 'hash', hashOn: { type: 'path' } }), [
    'backends[0].hashOn.type: must be uri, header or cookie (got "path")',
  ]);
  assert.deepEqual(problemsOf({ balance: 'hash', hashOn: { type: 'header', name: 'X User' } }), [
    'backends[0].hashOn.name: must be a header or cookie name (letters, digits and !#$%&\'*+-.^_`|~) (got "X User")',
  ]);
});

test('allBackups and preempt are booleans', () => {
  const b = validateConfig(config({ allBackups: true, preempt: false })).backends[0]!;
  assert.equal(b.allBackups, true);
  assert.equal(b.preempt, false);
  assert.deepEqual(problemsOf({ allBackups: 'yes', preempt: 1 }), [
    'backends[0].allBackups: must be true or false (got "yes")',
    'backends[0].preempt: must be true or false (got 1)',
  ]);
});

test('stickyCookie: name TANDEMSRV by default, maxAge a duration of at least 1s', () => {
  assert.deepEqual(validateConfig(config({ stickyCookie: {} })).backends[0]!.stickyCookie, {
    name: 'TANDEMSRV',
  });
  assert.deepEqual(
    validateConfig(config({ stickyCookie: { name: 'SRV', maxAge: '1h' } })).backends[0]!.stickyCookie,
    { name: 'SRV', maxAge: 3_600_000 },
  );
  assert.deepEqual(problemsOf({ stickyCookie: { name: 'a;b', maxAge: '10ms' } }), [
    'backends[0].stickyCookie.name: must be a cookie name (letters, digits and !#$%&\'*+-.^_`|~) (got "a;b")',
    'backends[0].stickyCookie.maxAge: must be at least 1000ms',
  ]);
  assert.deepEqual(problemsOf({ stickyCookie: { nmae: 'x' } }), [
    'backends[0].stickyCookie.nmae: unknown key (did you mean "name"?)',
  ]);
});
