/**
 * Ports for test and benchmark processes to listen on.
 *
 * Ports come from below the kernel's ephemeral range (32768–60999 on Linux by default), where
 * listen(0) would pick: a port picked there can be taken, between the pick and the bind, as the
 * local end of one of the many outgoing connections a test makes (a replica connecting to its
 * primary, a health check). Each port is handed out once per process, so two components of one
 * config never get the same one.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const handedOut = new Set<number>();
const LOWEST = 20_000;

/** The first port of the kernel's ephemeral range. */
function ephemeralStart(): number {
  try {
    const first = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0],
    );
    return Number.isInteger(first) && first > 0 ? first : 32_768;
  } catch {
    return 32_768; // not Linux: its default
  }
}

const HIGHEST = Math.min(ephemeralStart(), 65_536) - 1;

/** True when 127.0.0.1:port can be listened on right now. */
export function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** The port the OS picks with listen(0): the fallback when no range is left below the ephemeral one. */
function osPicked(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A free port on 127.0.0.1, never handed out before by this process. */
export async function freePort(): Promise<number> {
  if (HIGHEST - LOWEST >= 1000) {
    for (let attempt = 0; attempt < 500; attempt++) {
      const port = LOWEST + Math.floor(Math.random() * (HIGHEST - LOWEST + 1));
      if (handedOut.has(port)) continue;
      if (await canListen(port)) {
        handedOut.add(port);
        return port;
      }
    }
  }
  for (;;) {
    const port = await osPicked();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

/** `n` distinct free ports. */
export async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < n) ports.push(await freePort());
  return ports;
}

/** The first of `n` consecutive free ports, none handed out before (for a server's application processes). */
export async function freePortRange(n: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = await freePort();
    if (first + n > 65_535) continue;
    let ok = true;
    for (let p = first + 1; p < first + n && ok; p++) ok = !handedOut.has(p) && (await canListen(p));
    if (!ok) continue;
    for (let p = first + 1; p < first + n; p++) handedOut.add(p);
    return first;
  }
  throw new Error(`no ${n} consecutive free ports found`);
}
