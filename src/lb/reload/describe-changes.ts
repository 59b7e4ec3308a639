/**
 * What a reload changes, one line each, for the log and for `tandem reload`:
 * `backend web: server web-03 added`, `backend web: server web-01 weight 1 → 3`,
 * `frontend api: added on 127.0.0.1:9000 (backend api)`, `serverTimeout: 60000 → 5000`.
 * Secrets (the admin token) are never shown, only said to have changed.
 */
import type { ResolvedConfig } from '../../config/load.js';
import type { BackendConfig, LoadBalancerConfig } from '../../config/schema.js';
import { formatAddress } from '../address.js';

/** The changes from (`oldConfig`, `oldLb`) to (`next`, `nextLb`) for one load balancer; `no change` if none. */
export function describeChanges(
  oldConfig: ResolvedConfig,
  oldLb: LoadBalancerConfig,
  next: ResolvedConfig,
  nextLb: LoadBalancerConfig,
): string[] {
  const out: string[] = [];

  const oldFrontends = new Map(oldLb.frontends.map((f) => [f.name, f]));
  const newFrontends = new Map(nextLb.frontends.map((f) => [f.name, f]));
  for (const [name, f] of newFrontends) {
    const o = oldFrontends.get(name);
    const where = formatAddress(f.host, f.port);
    if (o === undefined) out.push(`frontend ${name}: added on ${where} (backend ${f.backend})`);
    else diff(`frontend ${name}: `, o, f, out);
  }
  for (const [name, o] of oldFrontends)
    if (!newFrontends.has(name))
      out.push(`frontend ${name}: removed (${formatAddress(o.host, o.port)}); its connections finish first`);

  const used = (c: ResolvedConfig, lb: LoadBalancerConfig) =>
    new Map(
      [...new Set(lb.frontends.map((f) => f.backend))].flatMap((n) => {
        const b = c.backends.find((x) => x.name === n);
        return b === undefined ? [] : [[n, b] as const];
      }),
    );
  const oldBackends = used(oldConfig, oldLb);
  const newBackends = used(next, nextLb);
  for (const [name, b] of newBackends) {
    const o = oldBackends.get(name);
    if (o === undefined) out.push(`backend ${name}: added (${b.servers.map((s) => s.name).join(', ')})`);
    else describeBackend(name, o, oldConfig, b, next, out);
  }
  for (const name of oldBackends.keys())
    if (!newBackends.has(name)) out.push(`backend ${name}: no longer used; its requests in flight finish`);

  const { frontends: _f, name: _n, workers: oldWorkers, spreadConnections: oldSpread, ...oldRest } = oldLb;
  const { frontends: _g, name: _m, workers: newWorkers, spreadConnections: newSpread, ...newRest } = nextLb;
  diff('', oldRest, newRest, out);
  if (oldWorkers !== newWorkers)
    out.push(
      `workers: ${show(oldWorkers)} → ${show(newWorkers)} (takes effect when the load balancer restarts)`,
    );
  if (oldSpread !== newSpread)
    out.push(
      `spreadConnections: ${show(oldSpread)} → ${show(newSpread)} (takes effect when the load balancer restarts)`,
    );
  return out.length > 0 ? out : ['no change'];
}

function describeBackend(
  name: string,
  o: BackendConfig,
  oldConfig: ResolvedConfig,
  b: BackendConfig,
  next: ResolvedConfig,
  out: string[],
): void {
  const { servers: oldServers, ...oldRest } = o;
  const { servers: newServers, ...newRest } = b;
  diff(`backend ${name}: `, oldRest, newRest, out);
  const address = (c: ResolvedConfig, s: BackendConfig['servers'][number]) => {
    if (s.address !== undefined) return s.address;
    const t = c.servers.find((x) => x.name === s.name);
    return t === undefined ? undefined : formatAddress(t.host, t.port);
  };
  for (const s of newServers) {
    const p = oldServers.find((x) => x.name === s.name);
    if (p === undefined) {
      out.push(`backend ${name}: server ${s.name} added`);
      continue;
    }
    diff(
      `backend ${name}: server ${s.name} `,
      { ...p, address: address(oldConfig, p) },
      { ...s, address: address(next, s) },
      out,
    );
  }
  for (const p of oldServers)
    if (!newServers.some((s) => s.name === p.name))
      out.push(`backend ${name}: server ${p.name} removed; its requests in flight finish`);
}

/** Appends `<prefix><path>: <old> → <new>` for every leaf that differs between `a` and `b`. */
function diff(prefix: string, a: unknown, b: unknown, out: string[], path = ''): void {
  if (JSON.stringify(a) === JSON.stringify(b)) return;
  if (isRecord(a) && isRecord(b)) {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)]))
      diff(prefix, a[key], b[key], out, path ? `${path}.${key}` : key);
    return;
  }
  if (/token$/i.test(path)) out.push(`${prefix}${path} changed`);
  else out.push(`${prefix}${path}: ${show(a)} → ${show(b)}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function show(v: unknown): string {
  return v === undefined ? 'unset' : typeof v === 'string' ? v : JSON.stringify(v);
}
