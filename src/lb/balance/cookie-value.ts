/**
 * The value of the cookie `name` in a `Cookie` request header (`a=1; b=2`, RFC 6265 §4.2.1), without
 * surrounding double quotes; undefined when the header has no such cookie. The first one wins when
 * the name appears twice. Names are case-sensitive.
 */
export function cookieValue(header: string, name: string): string | undefined {
  const n = header.length;
  let i = 0;
  while (i < n) {
    while (i < n && (header.charCodeAt(i) === 0x20 || header.charCodeAt(i) === 0x09)) i++;
    let end = header.indexOf(';', i);
    if (end < 0) end = n;
    const eq = header.indexOf('=', i);
    if (eq >= 0 && eq < end && header.startsWith(name, i) && isBlank(header, i + name.length, eq)) {
      let start = eq + 1;
      let stop = end;
      while (start < stop && isSpace(header.charCodeAt(start))) start++;
      while (stop > start && isSpace(header.charCodeAt(stop - 1))) stop--;
      if (stop - start >= 2 && header.charCodeAt(start) === 0x22 && header.charCodeAt(stop - 1) === 0x22) {
        start++;
        stop--;
      }
      return header.slice(start, stop);
    }
    i = end + 1;
  }
  return undefined;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/** Only spaces or tabs between `from` and `to`. */
function isBlank(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (!isSpace(s.charCodeAt(i))) return false;
  return true;
}
