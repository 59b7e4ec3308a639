/**
 * Fixtures for the health, failover and retry tests: a config with the backend options those
 * features add (built through the real schema), and a bounded request loop.
 */
import type { Agent } from 'node:http';
import type { ResolvedConfig } from '../../src/config/load.js';
import { type ConfigOptions, configWith as configWithBackend, fetch } from './fixtures.js';

/** Backend options beyond ConfigOptions, written as in tandem.yaml. */
export interface BackendExtras {
  healthCheck?: Record<string, unknown>;
  passiveHealth?: Record<string, unknown>;
  panicThreshold?: number;
  slowStart?: number | string;
  retries?: number;
}

/** makeConfig's config with `extras` merged into backend `web` (see fixtures.configWith). */
export function configWith(opts: ConfigOptions, extras: BackendExtras): Promise<ResolvedConfig> {
  return configWithBackend(opts, { ...extras });
}

/** Outcome of a request loop: every status seen, and who answered each 200. */
export interface LoadResult {
  statuses: Map<number | string, number>;
  servedBy: Map<string, number>;
  sent: number;
}

/**
 * Sends GET `path` to the proxy at about `rate` requests per second, `count` in all (bounded:
 * it also stops after `maxMs`), `concurrency` at most at once, and waits for every answer.
 * A request that fails on the client side counts under its error code.
 */
export async function load(
  port: number,
  opts: {
    count: number;
    rate: number;
    maxMs: number;
    agent?: Agent;
    path?: string;
    onSent?: (n: number) => void;
  },
): Promise<LoadResult> {
  const result: LoadResult = { statuses: new Map(), servedBy: new Map(), sent: 0 };
  const pending: Promise<void>[] = [];
  const started = Date.now();
  const gap = 1000 / opts.rate;
  while (result.sent < opts.count && Date.now() - started < opts.maxMs) {
    const due = started + result.sent * gap;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    result.sent++;
    opts.onSent?.(result.sent);
    pending.push(
      fetch(port, opts.path ?? '/', { agent: opts.agent ?? false }).then(
        (r) => {
          result.statuses.set(r.status, (result.statuses.get(r.status) ?? 0) + 1);
          if (r.status === 200) result.servedBy.set(r.text, (result.servedBy.get(r.text) ?? 0) + 1);
        },
        (err: NodeJS.ErrnoException) => {
          const key = err.code ?? err.message;
          result.statuses.set(key, (result.statuses.get(key) ?? 0) + 1);
        },
      ),
    );
  }
  await Promise.all(pending);
  return result;
}
