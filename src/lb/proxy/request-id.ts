/**
 * The request id header (`requestIdHeader`, default `X-Request-Id`): a valid id from the client is
 * kept, any other gets replaced by a generated one; the server gets it and the client gets it back.
 *
 * Generated ids are `<prefix>-<counter>`: the prefix is random, drawn once per process, and the
 * counter (base 36) counts the process's requests, so ids are unique without any crypto per request.
 */
import { randomBytes } from 'node:crypto';

/** The configured header, with its lowercase name for comparisons with Node's raw header names. */
export interface RequestIdHeader {
  /** As configured (`X-Request-Id`): the spelling sent on. */
  readonly name: string;
  /** Lowercase. */
  readonly lower: string;
}

/** Longest request id accepted from a client (longer ones are replaced). */
export const MAX_REQUEST_ID_LENGTH = 200;

const PREFIX = `${randomBytes(6).toString('base64url')}-`;
let counter = 0;

/** A new process-unique request id, like `q3Xk9v2A-1a2b`. */
export function nextRequestId(): string {
  counter++;
  return PREFIX + counter.toString(36);
}

/** The header named `name`, or undefined when request ids are off (`false`). */
export function requestIdHeader(name: string | false): RequestIdHeader | undefined {
  return name === false ? undefined : { name, lower: name.toLowerCase() };
}

/**
 * A client-sent id is kept when it is 1 to 200 visible ASCII characters (no spaces, no commas:
 * one id, not a list) — enough for UUIDs, W3C trace ids and the ids of other proxies.
 */
export function isValidRequestId(value: string): boolean {
  const n = value.length;
  if (n === 0 || n > MAX_REQUEST_ID_LENGTH) return false;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x21 || c > 0x7e || c === 0x2c) return false;
  }
  return true;
}

/**
 * The request id for a request with the raw header list `raw`: the first field named
 * `header` when its value is valid, else a new one.
 */
export function requestIdFor(raw: readonly string[], header: RequestIdHeader): string {
  const lower = header.lower;
  const len = lower.length;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // Length first: almost every field is rejected without lowercasing its name.
    if (name.length !== len || name.toLowerCase() !== lower) continue;
    const value = raw[i + 1]!;
    return isValidRequestId(value) ? value : nextRequestId();
  }
  return nextRequestId();
}
