/**
 * Reaching a local listener: the address to connect to for a bind address, and a readiness probe
 * that polls a TCP port until it accepts connections or a deadline passes.
 */
import { connect } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

/** The address to connect to for a listener bound to `host` (a wildcard bind is reached on loopback). */
export function reachableHost(host: string): string {
  if (host === '' || host === '0.0.0.0') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '::1';
  return host;
}

/** Deadline, polling period and cancellation of waitForPort. */
export interface ProbeOptions {
  /** Give up after this many milliseconds. */
  timeout: number;
  /** Polling period between two failed attempts (default 50 ms). */
  interval?: number;
  /** Aborting stops the probe at once (it then resolves false). */
  signal?: AbortSignal;
}

/**
 * Resolves true as soon as `host:port` accepts a TCP connection; false when the deadline passes
 * or `signal` aborts first. The connections it opens are closed at once.
 */
export async function waitForPort(host: string, port: number, opts: ProbeOptions): Promise<boolean> {
  const deadline = Date.now() + opts.timeout;
  const interval = opts.interval ?? 50;
  for (;;) {
    if (opts.signal?.aborted) return false;
    const remaining = deadline - Date.now();
    if (remaining <= 0) return false;
    if (await accepts(host, port, Math.min(remaining, 1000), opts.signal)) return true;
    const wait = Math.min(interval, deadline - Date.now());
    if (wait <= 0) return false;
    try {
      await delay(wait, undefined, opts.signal ? { signal: opts.signal } : {});
    } catch (err) {
      if ((err as Error).name === 'AbortError') return false;
      throw err;
    }
  }
}

/** One connection attempt: true if it connects within `timeout`. */
function accepts(host: string, port: number, timeout: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(ok);
    };
    const onAbort = () => finish(false);
    const timer = setTimeout(() => finish(false), timeout);
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}
