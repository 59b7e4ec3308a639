import assert from 'node:assert/strict';
import { test } from 'node:test';
import { haproxyMaxconn } from '../contenders/haproxy.js';

test("HAProxy's maxconn does not shrink with the idle test: targeted runs get a full run's", () => {
  // Open-files hard limit 20,000 (this project's machine): 9,950 with or without the idle test.
  assert.equal(haproxyMaxconn(1024, 20_000), 9950);
  assert.equal(haproxyMaxconn(10_256, 20_000), 9950);
  // Room for more: at least 10,000, and what the idle test needs beyond that.
  assert.equal(haproxyMaxconn(1024, 65_536), 10_000);
  assert.equal(haproxyMaxconn(20_000, 65_536), 20_000);
  // A low limit: what fits, but never below 256.
  assert.equal(haproxyMaxconn(1024, 1024), 462);
  assert.equal(haproxyMaxconn(1024, 300), 256);
});
