/**
 * Turns the config into the list of component processes, in start order, and says which of them
 * belong on this machine (their host is one of this machine's addresses).
 */
import { hostname, networkInterfaces } from 'node:os';
import type { ResolvedConfig } from '../config/load.js';

export type ComponentKind = 'db' | 'server' | 'lb';

export interface ComponentSpec {
  /** Unique id, e.g. `db web-01`, `server web-01`, `lb lb-01`. */
  id: string;
  kind: ComponentKind;
  name: string;
  host: string;
  /** Components of one stage start together, after every earlier stage is ready. */
  stage: number;
  /** The address it serves, for people. */
  address: string;
  /** Arguments after `tandem`. */
  args: string[];
}

/** Start stages: the primary, then replicas (they clone it), then servers, then load balancers. */
export const STAGE_NAMES = ['database primary', 'database replicas', 'servers', 'load balancers'];

export function componentsOf(config: ResolvedConfig): ComponentSpec[] {
  const out: ComponentSpec[] = [];
  for (const n of config.database?.nodes ?? []) {
    out.push({
      id: `db ${n.name}`,
      kind: 'db',
      name: n.name,
      host: n.host,
      stage: n.role === 'primary' ? 0 : 1,
      address: `postgres://${n.host}:${n.port}`,
      args: ['db', '--node', n.name],
    });
  }
  for (const s of config.servers) {
    out.push({
      id: `server ${s.name}`,
      kind: 'server',
      name: s.name,
      host: s.host,
      stage: 2,
      address: `http://${s.host}:${s.port}`,
      args: ['server', '--name', s.name],
    });
  }
  for (const lb of config.loadBalancers) {
    out.push({
      id: `lb ${lb.name}`,
      kind: 'lb',
      name: lb.name,
      host: lb.host,
      stage: 3,
      address: lb.frontends.map((f) => `http://${f.host}:${f.port}`).join(' '),
      args: ['lb', '--name', lb.name],
    });
  }
  return out;
}

/** True if `host` names this machine: loopback, one of its interface addresses, or its hostname. */
export function isLocalHost(host: string): boolean {
  if (
    host === 'localhost' ||
    host.startsWith('127.') ||
    host === '::1' ||
    host === '0.0.0.0' ||
    host === '::'
  )
    return true;
  if (host === hostname()) return true;
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.address === host) return true;
  }
  return false;
}
