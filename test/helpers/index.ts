/** Shared test helpers: free ports, temp dirs, polling with a deadline, skip-or-fail. */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

export { freePort, freePorts } from './ports.js';

/** A new temp directory (mode 0755 so an unprivileged database user can reach it), removed by `cleanup`. */
export function tempDir(prefix = 'tandem-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(path, 0o755); // mkdtemp makes it 0700
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * Polls `check` until it returns a truthy value (returned) or the deadline passes (throws with
 * `what` and the last error). No fixed sleeps: the interval is only the polling period.
 */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  { timeout = 10_000, interval = 50 }: { timeout?: number; interval?: number } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeout;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeout}ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/**
 * Skips the test when `missing` names something absent; with TANDEM_TEST_REQUIRE=all (CI), fails
 * instead, so a skipped test can never pass silently. Returns true when the test must stop.
 */
export function skipUnless(t: TestContext, missing: string | undefined): boolean {
  if (!missing) return false;
  if (process.env['TANDEM_TEST_REQUIRE'] === 'all') {
    throw new Error(`required by TANDEM_TEST_REQUIRE=all but unavailable: ${missing}`);
  }
  t.skip(missing);
  return true;
}

export { isProcessAlive as isAlive } from '../../src/process-alive.js';

/** A seeded pseudo-random source in [0, 1) (mulberry32): the same seed gives the same draws. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A sample of a Prometheus text exposition: `name` with exactly `labels` (as written, like
 * `node="web-01"`), or undefined when there is none.
 */
export function promSample(text: string, name: string, labels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? undefined : Number(line.slice(name.length + labels.length + 3));
}
