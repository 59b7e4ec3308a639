/** `host:port` strings in the config: `10.0.0.5:5432`, `db-01.internal:5432`, `[::1]:5432`. */

/** A host and a port, parsed from `host:port`. */
export interface HostPort {
  host: string;
  port: number;
}

const HOST_PORT = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)):([0-9]{1,5})$/;

/**
 * Parses `host:port` (an IPv6 address in brackets); undefined when the text is not of that form or
 * the port is outside 1-65535. The host comes back without brackets.
 */
export function parseHostPort(text: string): HostPort | undefined {
  const m = HOST_PORT.exec(text);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1] ?? m[2]!, port };
}
