/**
 * When a request that failed on a server may be sent again (to another server: a redispatch).
 * `backends[].retries` bounds how often; this decides whether at all.
 */

/** Methods that may be sent twice with the same effect as once (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** What is known of an attempt that failed before any response header arrived. */
export interface FailedAttempt {
  /** A connection to the server existed: bytes of the request may have left. */
  readonly connected: boolean;
  /** Which timer ended the attempt, if one did. */
  readonly timedOut: 'connect' | 'server' | undefined;
  /** The request has a body (streamed from the client as it comes, so it cannot be sent twice). */
  readonly hasBody: boolean;
  readonly method: string;
  /** The error's code (`ECONNREFUSED`, `ECONNRESET`, `HPE_INVALID_CONSTANT`…). */
  readonly code: string | undefined;
}

/**
 * Whether a failed attempt may be sent again:
 * - nothing of it left the proxy (no connection: refused, unreachable, connect timeout): always,
 *   whatever the method, since the body is read from the client only once connected;
 * - it may have reached the server (connected, then reset or closed before an answer): only an
 *   idempotent request (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) without a body. A POST is never
 *   sent twice;
 * - the server answered something that is not HTTP (`HPE_*` parse errors): never: 502;
 * - no answer within `serverTimeout`: never (the server may still be working on it, and each
 *   retry would add a whole timeout to the client's wait): 504.
 */
export function mayRetry(attempt: FailedAttempt): boolean {
  if (!attempt.connected) return true;
  if (attempt.timedOut === 'server' || attempt.code?.startsWith('HPE_')) return false;
  return !attempt.hasBody && IDEMPOTENT.has(attempt.method);
}
