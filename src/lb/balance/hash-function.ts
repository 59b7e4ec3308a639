/**
 * The 32-bit hashes of consistent hashing: FNV-1a over a string's UTF-16 code units, finished with
 * MurmurHash3's avalanche step (so keys that differ in one character land far apart on the ring).
 * Fixed forever: the same key maps to the same server on every load balancer and after restarts.
 */

/** MurmurHash3's 32-bit finaliser: every input bit affects every output bit. */
export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash of `s.slice(start, end)`, without making the slice: an unsigned 32-bit integer. */
export function hashString(s: string, start = 0, end = s.length): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return mix32(h);
}
