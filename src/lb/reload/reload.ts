/**
 * Config reload of a running load balancer (`tandem reload`, SIGHUP, `POST /reload` on the admin
 * API), applied in place without dropping a connection:
 *
 * - a backend whose config (and servers' addresses) did not change goes on untouched; a changed
 *   one is rebuilt (new balancer, new health checks with the new settings) around the servers it
 *   keeps (see carry-over.ts), and takes the next requests; requests in flight finish where they are;
 * - a frontend on the same address and mode keeps its listener and its client connections
 *   (keep-alive ones included) and switches to the new backend and timeouts for its next requests;
 *   a new one starts listening; a removed one stops accepting and its connections finish (up to
 *   the drain timeout) before they are closed;
 * - a changed stats or admin address is listened on first, then the old one is closed.
 *
 * Everything that can fail (the config, listening on new addresses) is done before anything is
 * changed: a reload is applied whole, or not at all.
 */
import type { Server } from 'node:net';
import type { ResolvedConfig } from '../../config/load.js';
import type { BackendConfig, FrontendConfig, LoadBalancerConfig } from '../../config/schema.js';
import { ReloadError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { formatAddress } from '../address.js';
import type { Backend } from '../backend/backend.js';
import type { UpstreamServer } from '../backend/upstream-server.js';
import type { HealthChangeListener } from '../health/health-check.js';
import { listen } from '../listen.js';
import { type Retired, retire, retiredServers } from './carry-over.js';
import { describeChanges } from './describe-changes.js';

/** A frontend's proxy (HTTP or TCP) as a reload sees it. */
export interface FrontendProxy {
  readonly frontend: FrontendConfig;
  /** The backend new requests (or connections) go to. */
  backend: Backend;
  /**
   * Binds and listens on the frontend's address (`component` names it in errors); rejects with a
   * TandemError (PortInUseError…) when it cannot. Later errors of the listener are logged.
   */
  listen(component: string): Promise<void>;
  /** Stops accepting; what is in flight may finish for up to `graceMs`. */
  close(graceMs: number): Promise<void>;
}

/** The live parts of a load balancer, which a reload changes in place, and how to build new ones. */
export interface RunningLb {
  readonly name: string;
  readonly log: Logger;
  config: ResolvedConfig;
  lb: LoadBalancerConfig;
  /** Backends by name. */
  readonly backends: Map<string, Backend>;
  readonly proxies: FrontendProxy[];
  stats: Server;
  admin: Server;
  /** The admin API's token. */
  token: string;
  readonly drainTimeout: number;
  readonly onHealthChange: HealthChangeListener;
  /** Servers a reload took out of service, until their requests in flight are done. */
  readonly retiring: Set<Retired>;
  /** Closes of listeners a reload replaced or removed, until done. */
  readonly closing: Set<Promise<void>>;
  newBackend(config: BackendConfig, all: ResolvedConfig, previous: Backend | undefined): Backend;
  newProxy(frontend: FrontendConfig, backend: Backend, lb: LoadBalancerConfig): FrontendProxy;
  /** Applies the load balancer's timeouts to a proxy that keeps running. */
  configureProxy(proxy: FrontendProxy, lb: LoadBalancerConfig): void;
  newStats(): Server;
  newAdmin(): Server;
  /** The admin token `lb` asks for (its `admin.token`, or the generated one). */
  adminToken(lb: LoadBalancerConfig, config: ResolvedConfig): string;
  /**
   * Lets a server the reload took out of service finish its requests (default: `retire`). A primary
   * with workers proxies nothing itself: its workers retire their own servers.
   */
  retire?(r: Retired): Promise<void>;
  /** Called when a reload has been applied, in the same tick (a primary tells its workers here). */
  committed?(): void;
}

/**
 * Applies `next` to the running load balancer; resolves with one line per change. Rejects with a
 * TandemError (PortInUseError, ReloadError…) and changes nothing when it cannot be applied.
 */
export async function applyReload(run: RunningLb, next: ResolvedConfig): Promise<string[]> {
  const lb = next.loadBalancers.find((l) => l.name === run.name);
  if (lb === undefined)
    throw new ReloadError(
      `the new config has no load balancer named "${run.name}" (known: ${next.loadBalancers.map((l) => l.name).join(', ')}); ` +
        'to remove it, stop it',
    );
  const token = run.adminToken(lb, next);

  // 1. Backends: the unchanged ones as they are, the others rebuilt around the servers they keep.
  const undo = weightsAndPanic(run);
  const backends = new Map<string, Backend>();
  const built: Backend[] = [];
  try {
    for (const f of lb.frontends) {
      if (backends.has(f.backend)) continue;
      const bc = next.backends.find((b) => b.name === f.backend);
      if (bc === undefined)
        throw new ReloadError(`${run.name} frontend ${f.name}: no backend named "${f.backend}"`);
      const old = run.backends.get(f.backend);
      if (old !== undefined && backendKey(old.config, run.config) === backendKey(bc, next)) {
        backends.set(f.backend, old);
        continue;
      }
      const b = run.newBackend(bc, next, old);
      built.push(b);
      backends.set(f.backend, b);
    }
  } catch (err) {
    undo();
    throw err;
  }

  // 2. Listeners: the frontends on an address (and mode) already served keep their listener.
  const running = new Map(run.proxies.map((p) => [frontendKey(p.frontend), p]));
  const kept = new Map<FrontendProxy, FrontendConfig>();
  const fresh: FrontendProxy[] = [];
  for (const f of lb.frontends) {
    const old = running.get(frontendKey(f));
    if (old !== undefined && !kept.has(old)) kept.set(old, f);
    else fresh.push(run.newProxy(f, backends.get(f.backend)!, lb));
  }
  const stale = run.proxies.filter((p) => !kept.has(p));
  const statsMoved = !sameAddress(run.lb.stats, lb.stats);
  const adminMoved = !sameAddress(run.lb.admin, lb.admin);
  const stats = statsMoved ? run.newStats() : run.stats;
  const admin = adminMoved ? run.newAdmin() : run.admin;
  try {
    for (const p of fresh) {
      const clash = stale.find(
        (s) => s.frontend.host === p.frontend.host && s.frontend.port === p.frontend.port,
      );
      if (clash !== undefined)
        throw new ReloadError(
          `frontend ${p.frontend.name}: ${formatAddress(p.frontend.host, p.frontend.port)} is served in mode ` +
            `${clash.frontend.mode} now; changing the mode of a listening address needs a restart (or another port)`,
        );
      await p.listen(`${run.name} frontend ${p.frontend.name}`);
    }
    if (statsMoved) await listen(stats, lb.stats.host, lb.stats.port, `${run.name} stats`);
    if (adminMoved) await listen(admin, lb.admin.host, lb.admin.port, `${run.name} admin API`);
  } catch (err) {
    await Promise.all([
      ...fresh.map((p) => p.close(0)),
      ...(statsMoved ? [closeNow(stats)] : []),
      ...(adminMoved ? [closeNow(admin)] : []),
    ]);
    undo();
    throw err;
  }

  // 3. Commit: nothing below fails.
  const changes = describeChanges(run.config, run.lb, next, lb);
  const current = [...backends.values()];
  const replaced = [...run.backends].filter(([name, old]) => backends.get(name) !== old);
  for (const [, old] of replaced) {
    old.stopChecks();
    for (const r of retiredServers(old, current)) {
      run.retiring.add(r);
      void (run.retire ?? retire)(r).then(() => run.retiring.delete(r));
    }
  }
  for (const b of built) {
    b.updatePanic();
    void b.startChecks(run.onHealthChange);
  }
  run.backends.clear();
  for (const [name, b] of backends) run.backends.set(name, b);
  for (const [name, old] of replaced) {
    // Requests waiting in a replaced backend's queue go to its successor's servers with a free
    // slot; those left wait out their queue timeout (503). A backend no longer used has no server
    // for them: 503 at once.
    if (old.queued === 0) continue;
    const successor = backends.get(name);
    if (successor === undefined) old.queue.rejectAll('unavailable');
    else old.queue.dispatch(successor.balancer, successor.servers);
  }

  for (const [p, f] of kept) {
    p.backend = backends.get(f.backend)!;
    run.configureProxy(p, lb);
  }
  run.proxies.splice(0, run.proxies.length, ...kept.keys(), ...fresh);
  for (const p of stale) track(run, p.close(run.drainTimeout));
  if (statsMoved) {
    stats.on('error', (err) => run.log.error(`stats: ${err.message}`));
    track(run, closeNow(run.stats));
    run.stats = stats;
  }
  if (adminMoved) {
    admin.on('error', (err) => run.log.error(`admin API: ${err.message}`));
    track(run, closeNow(run.admin));
    run.admin = admin;
  }
  run.token = token;
  run.lb = lb;
  run.config = next;
  run.committed?.();
  return changes;
}

/** Runs `closing` in the background; the load balancer's close() waits for it. */
function track(run: RunningLb, closing: Promise<void>): void {
  run.closing.add(closing);
  void closing.then(() => run.closing.delete(closing));
}

/** Stops listening and closes every connection of a stats or admin server (short requests only). */
export function closeNow(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    (server as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
  });
}

/**
 * Building backends sets the weights (and clears the panic flag) of the servers they take over:
 * the function returned puts both back, for a reload that fails after that.
 */
function weightsAndPanic(run: RunningLb): () => void {
  const saved = new Map<UpstreamServer, { weight: number; ignoreHealth: boolean }>();
  for (const b of run.backends.values())
    for (const s of b.servers) saved.set(s, { weight: s.weight, ignoreHealth: s.ignoreHealth });
  return () => {
    for (const [s, v] of saved) {
      s.weight = v.weight;
      s.ignoreHealth = v.ignoreHealth;
    }
  };
}

/** What makes two backend configs the same at run time: the config and its servers' addresses. */
export function backendKey(bc: BackendConfig, config: ResolvedConfig): string {
  const addresses = bc.servers.map((s) => {
    const t = config.servers.find((x) => x.name === s.name);
    return t === undefined ? null : [t.host, t.port];
  });
  return JSON.stringify([bc, addresses]);
}

function frontendKey(f: FrontendConfig): string {
  return `${f.mode}|${formatAddress(f.host, f.port)}`;
}

function sameAddress(a: { host: string; port: number }, b: { host: string; port: number }): boolean {
  return a.host === b.host && a.port === b.port;
}
