/** The shared read buffer's chunks: copies of what was read, large ones in memory used again. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { READ_BUFFER, READ_SIZE, chunkOf, release } from '../../src/lb/proxy/read-buffer.js';

test('a chunk is a copy of the bytes read: the next read does not change it', () => {
  for (const n of [18, 20_000, READ_SIZE]) {
    READ_BUFFER.fill(1, 0, n);
    const chunk = chunkOf(n);
    READ_BUFFER.fill(2, 0, n);
    assert.equal(chunk.length, n);
    assert.ok(
      chunk.every((b) => b === 1),
      `${n} bytes kept`,
    );
  }
});

test('a released large chunk lends its memory to the next large one; small chunks and views are not kept', () => {
  const big = chunkOf(READ_SIZE);
  release(big);
  const next = chunkOf(30_000);
  assert.equal(next.buffer, big.buffer, 'the released memory serves the next large chunk');
  assert.equal(next.length, 30_000);
  const small = chunkOf(100);
  release(small);
  assert.notEqual(chunkOf(20_000).buffer, small.buffer);
  release(next.subarray(10)); // a view into the middle: not the chunk chunkOf made
  assert.notEqual(chunkOf(20_000).buffer, next.buffer);
});
