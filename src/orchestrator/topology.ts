/**
 * Turns the config into the list of component processes, in start order, and says which of them
 * belong on this machine (their host is one of this machine's addresses).
 */
import { hostname, networkInterfaces } from 'node:os';
import type { ResolvedConfig } from '../config/load.js';

export type ComponentKind = 'db' | 'cluster' | 'server' | 'lb';

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

/**
 * Start stages: the primary, then replicas (they clone it), then the cluster manager, then
 * servers, then load balancers.
 */
export const STAGE_NAMES = [
  'database primary',
  'database replicas',
  'cluster manager',
  'servers',
  'load balancers',
];

/**
 * The components of the config. `primary` is the database node that is primary now (from the
 * cluster state; after a failover it is not the one the config names), so it starts first.
 */
export function componentsOf(config: ResolvedConfig, primary?: string): ComponentSpec[] {
  const out: ComponentSpec[] = [];
  const db = config.database;
  const current = primary ?? db?.nodes.find((n) => n.role === 'primary')?.name;
  for (const n of db?.nodes ?? []) {
    out.push({
      id: `db ${n.name}`,
      kind: 'db',
      name: n.name,
      host: n.host,
      stage: n.name === current ? 0 : 1,
      address: `${config.database!.engine === 'postgres' ? 'postgres' : 'mysql'}://${n.host}:${n.port}`,
      args: ['db', '--node', n.name],
    });
  }
  if (db && db.nodes.length > 1) {
    const host = db.nodes.find((n) => n.name === current)?.host ?? '127.0.0.1';
    out.push({
      id: 'cluster',
      kind: 'cluster',
      name: 'manager',
      host,
      stage: 2,
      address: `failover after ${db.failover.timeout} ms`,
      args: ['cluster'],
    });
  }
  for (const s of config.servers) {
    out.push({
      id: `server ${s.name}`,
      kind: 'server',
      name: s.name,
      host: s.host,
      stage: 3,
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
      stage: 4,
      address: lb.frontends
        .map((f) => `${f.mode === 'tcp' ? 'tcp' : 'http'}://${f.host}:${f.port}`)
        .join(' '),
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
