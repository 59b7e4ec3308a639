/**
 * Request limits checked as soon as a request's headers are in, before any server is contacted:
 * the number of header fields (`maxHeaders` → 431) and a declared body size (`Content-Length`
 * over `maxBodySize` → 413). The header section's size (`maxHeaderSize` → 431) is enforced by
 * Node's parser, and a chunked body that grows past `maxBodySize` is cut by the proxy as it
 * streams (see http-proxy.ts).
 */
import type { RequestHead } from './client-connection.js';
import type { ProxyOptions } from './proxy-options.js';

/** 0 when `req` is within the limits, else the status to answer it with. */
export function limitStatus(req: RequestHead, options: ProxyOptions): 0 | 413 | 431 {
  if (req.rawHeaders.length > options.maxHeaders * 2) return 431;
  const max = options.maxBodySize;
  if (max !== undefined) {
    // The parser has checked the value: digits only; a repeated field was rejected (request-guard.ts).
    const length = req.headers['content-length'];
    if (length !== undefined && Number(length) > max) return 413;
  }
  return 0;
}

/** The plain-text body of a limit's answer. */
export function limitMessage(status: 413 | 431, options: ProxyOptions): string {
  return status === 413
    ? `413 Content Too Large: the request body is larger than ${options.maxBodySize} bytes\n`
    : `431 Request Header Fields Too Large: more than ${options.maxHeaders} header fields\n`;
}
