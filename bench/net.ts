/** Small network helpers of the harness: free ports, one HTTP GET, waiting for a port to answer. */
import { request } from 'node:http';
import { BenchError } from './bench-error.js';
import type { Child } from './children.js';

/** The loopback address every process of the benchmark listens on. */
export const HOST = '127.0.0.1';

/** Free ports below the ephemeral range, each handed out once (shared with the tests). */
export { freePort, freePorts } from '../test/helpers/ports.js';

/** A response read whole. */
export interface HttpReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** `GET path` on a new connection to 127.0.0.1:port; rejects on a network error or after `timeoutMs`. */
export function httpGet(port: number, path: string, timeoutMs = 2000): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: HOST, port, path, agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Polls `check` every 100 ms until it returns true; rejects after `timeoutMs` (with the last
 * error), or as soon as `child` (the process that should make it true) exits.
 */
export async function pollUntil(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  child?: Child,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    if (child && !child.running) {
      throw new BenchError(`${child.name} exited before ${what}${child.tail()}`);
    }
    try {
      if (await check()) return;
      last = '';
    } catch (err) {
      last = `: ${(err as Error).message}`;
    }
    if (Date.now() > deadline) {
      throw new BenchError(`no ${what} within ${timeoutMs} ms${last}${child ? child.tail() : ''}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
