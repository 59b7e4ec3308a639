/**
 * What an HTTP health check expects of the answer: a status among `expectStatus`, and a body that
 * contains `expectBody` (or matches it, when written as a regular expression `/.../flags`).
 */

/** The most of a check response's body that is read and matched. */
export const MAX_CHECK_BODY = 64 * 1024;

/**
 * A test of status codes from the normalised `expectStatus` of the config (`200,204,300-399`):
 * a lookup table, built once.
 */
export function statusMatcher(spec: string): (status: number) => boolean {
  const table = new Uint8Array(600);
  for (const item of spec.split(',')) {
    const [from, to = from] = item.split('-').map(Number);
    for (let s = from!; s <= to!; s++) if (s >= 0 && s < 600) table[s] = 1;
  }
  return (status) => table[status] === 1;
}

/** A test of a check response's body. */
export interface BodyMatcher {
  test(body: string): boolean;
  /** How a mismatch reads: `body does not contain "ready"`, `body does not match /ok|ready/i`. */
  readonly mismatch: string;
}

/** The matcher of `expectBody`: a regular expression when written `/pattern/flags`, else a substring. */
export function bodyMatcher(spec: string): BodyMatcher {
  const m = /^\/(.+)\/([a-z]*)$/s.exec(spec);
  if (m) {
    // g and y would make test() stateful (lastIndex); every body is matched from its start.
    const re = new RegExp(m[1]!, m[2]!.replace(/[gy]/g, ''));
    return { test: (body) => re.test(body), mismatch: `body does not match ${spec}` };
  }
  return { test: (body) => body.includes(spec), mismatch: `body does not contain ${JSON.stringify(spec)}` };
}
