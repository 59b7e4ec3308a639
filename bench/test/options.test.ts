import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UsageError } from '../../src/errors.js';
import { parseOptions } from '../options.js';

const IDS = ['direct', 'tandem-l7', 'haproxy-http'];

test('defaults: 3 runs of 5 s after a 2 s warm-up, at 16, 64 and 256 connections, 10,000 idle', () => {
  const o = parseOptions([], IDS);
  assert.equal(o.durationSec, 5);
  assert.equal(o.warmupSec, 2);
  assert.equal(o.runs, 3);
  assert.deepEqual(o.connections, [16, 64, 256]);
  assert.equal(o.only, undefined);
  assert.deepEqual(o.cases, ['small', '64k']);
  assert.equal(o.idleConnections, 10_000);
  assert.equal(o.dbClients, 16);
  assert.equal(parseOptions(['--db-clients', '4'], IDS).dbClients, 4);
  assert.throws(() => parseOptions(['--db-clients', '0'], IDS), UsageError);
  assert.equal(o.tandemWorkers, 'auto');
  assert.equal(o.tandemSpread, 'lopsided');
  assert.equal(parseOptions(['--tandem-spread', 'even'], IDS).tandemSpread, 'even');
  assert.equal(parseOptions(['--tandem-spread', 'off'], IDS).tandemSpread, 'off');
  assert.throws(
    () => parseOptions(['--tandem-spread', 'yes'], IDS),
    (err: Error) =>
      err instanceof UsageError &&
      err.message === 'bench: --tandem-spread: must be lopsided, even, off (got "yes")',
  );
});

test('--quick makes one short run per point; explicit options still win', () => {
  const o = parseOptions(['--quick', '--duration', '5s', '--only', 'tandem-l7,haproxy-http'], IDS);
  assert.equal(o.runs, 1);
  assert.equal(o.durationSec, 5);
  assert.deepEqual(o.only, ['tandem-l7', 'haproxy-http']);
});

test('bad options are usage errors that name the option', () => {
  assert.throws(
    () => parseOptions(['--only', 'nope'], IDS),
    (e: unknown) => e instanceof UsageError && /"nope"/.test(e.message),
  );
  assert.throws(() => parseOptions(['--connections', '16,x'], IDS), UsageError);
  assert.throws(() => parseOptions(['--duration', '0'], IDS), UsageError);
  assert.throws(() => parseOptions(['--load', 'ab'], IDS), UsageError);
  assert.throws(() => parseOptions(['--bogus'], IDS), UsageError);
});
