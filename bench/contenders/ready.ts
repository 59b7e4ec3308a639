import type { BackendAddress } from '../backend/backends.js';
import type { Child } from '../children.js';
import { httpGet, pollUntil } from '../net.js';

/** Longest wait for a contender to serve after it was started. */
const START_TIMEOUT_MS = 20_000;

/**
 * Waits until `GET /` on `port` has been answered 200 by every backend of `backends` (so health
 * checks have brought them all up); fails early, with its output, if `child` exits.
 */
export async function waitUntilServing(
  what: string,
  port: number,
  backends: readonly BackendAddress[],
  child?: Child,
): Promise<void> {
  const seen = new Set<string>();
  await pollUntil(
    `answers of ${backends.map((b) => b.name).join(' and ')} through ${what}`,
    async () => {
      // Several requests per poll: round robin may start on either server.
      for (let i = 0; i < backends.length; i++) {
        const reply = await httpGet(port, '/');
        if (reply.status !== 200) return false;
        const who = /hello from (\S+)/.exec(reply.body.toString())?.[1];
        if (who) seen.add(who);
      }
      return backends.every((b) => seen.has(b.name));
    },
    START_TIMEOUT_MS,
    child,
  );
}
