/**
 * The RFC 7239 `Forwarded` element the proxy adds for a request: `for=` the client address,
 * `proto=` the frontend's scheme and `host=` the Host the client asked for, e.g.
 * `for=192.0.2.60;proto=http;host=shop.example` or `for="[2001:db8::1]";proto=http;host="a.test:8080"`.
 * Values that are not tokens (IPv6 addresses, a Host with a port) are quoted; IPv6 addresses go in
 * brackets (RFC 7239 §6).
 */

/** tchar (RFC 9110 §5.6.2): the characters a parameter value may use unquoted. */
function isToken(value: string): boolean {
  if (value.length === 0) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    const alnum = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
    // ! # $ % & ' * + - . ^ _ ` | ~
    if (!alnum && "!#$%&'*+-.^_`|~".indexOf(value[i]!) < 0) return false;
  }
  return true;
}

/** A parameter value: as is when it is a token, else a quoted-string with `"` and `\` escaped. */
export function forwardedValue(value: string): string {
  if (isToken(value)) return value;
  const escaped = value.includes('"') || value.includes('\\') ? value.replace(/["\\]/g, '\\$&') : value;
  return `"${escaped}"`;
}

/** The node (`for=` value) of a client address: IPv6 bracketed and quoted, `unknown` when absent. */
export function forwardedNode(ip: string | undefined): string {
  if (ip === undefined || ip === '') return 'unknown';
  return ip.includes(':') ? `"[${ip}]"` : ip;
}

/** The element for one hop: `for=…;proto=…[;host=…]`. */
export function forwardedElement(
  clientIp: string | undefined,
  proto: string,
  host: string | undefined,
): string {
  const element = `for=${forwardedNode(clientIp)};proto=${proto}`;
  return host === undefined ? element : `${element};host=${forwardedValue(host)}`;
}
