/**
 * What a worker process of a load balancer runs: the proxies of the frontends and the backends they
 * send to (servers, balancers, connection pools, queues), without health checks, stats or admin
 * API, which stay with the primary. The primary shares the frontends' listening sockets with it,
 * tells it every change of the servers' state and every config reload, and reads its counters.
 */
import { Socket } from 'node:net';
import type { ResolvedConfig } from '../../config/load.js';
import type { BackendConfig, LoadBalancerConfig, SpreadMode } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { Backend } from '../backend/backend.js';
import { configureProxy, createProxy } from '../proxy/create-proxy.js';
import type { HttpProxy } from '../proxy/http-proxy.js';
import { openConnections, type RawHandle } from '../proxy/injected.js';
import { type ServerPicker, TcpProxy } from '../proxy/tcp-proxy.js';
import { type Retired, retire, retiredServers } from '../reload/carry-over.js';
import { backendKey } from '../reload/reload.js';
import { LatencyHistogram } from '../stats/latency-histogram.js';
import { ConnectionSpread, REPORT_DELAY_MS, reportAtOnce } from './connection-spread.js';
import type { FrontendEntry, FromWorker, WorkerCounters } from './messages.js';
import { RemotePassiveHealth } from './remote-passive.js';
import { applyBackendState, type BackendState, backendCounters } from './server-state.js';

type Proxy = HttpProxy | TcpProxy;

/** A listening socket's handle as Node's net.Server drives it: it calls onconnection per connection. */
interface ListenWrap {
  onconnection(this: ListenWrap, status: number, client: object | undefined): void;
}

/** What a connection's close tells the spread of its frontend (one per proxy, shared). */
interface SpreadTiming {
  id: number;
  spread: ConnectionSpread;
  changed: () => void;
}
const kTiming = Symbol('tandem.spreadTiming');
const kSince = Symbol('tandem.acceptedAt');
type TimedSocket = Socket & { [kTiming]?: SpreadTiming; [kSince]?: number };

/** A timed connection closed: its lifetime goes into its frontend's average (no closure per connection). */
function onTimedClose(this: TimedSocket): void {
  const timing = this[kTiming]!;
  const now = performance.now();
  timing.spread.closed(timing.id, now - this[kSince]!, now);
  timing.changed();
}

/** Client connections open in `p` now. */
function connectionsOf(p: Proxy): number {
  return p instanceof TcpProxy ? p.connections : openConnections(p.server);
}

/** The proxies and backends of one worker. */
export class WorkerPlane {
  private config: ResolvedConfig;
  private lb: LoadBalancerConfig;
  private readonly backends = new Map<string, Backend>();
  /** The proxies by the primary's frontend id; a closing one stays until closed. */
  private readonly proxies = new Map<number, Proxy>();
  private readonly latency = new Map<string, LatencyHistogram>();
  private readonly retiring = new Set<Retired>();
  /** TCP frontends' questions to the primary (see workers/tcp-sessions.ts), by id. */
  private readonly questions = new Map<
    number,
    (answer: { server?: string | undefined; sid?: number | undefined }) => void
  >();
  private nextQuestion = 1;
  /** The other workers' connections per frontend, to keep them spread (connection-spread.ts). */
  private readonly spread: ConnectionSpread;
  /** Frontends this worker accepts on, and its connections of each as last reported. */
  private readonly reported = new Map<number, number>();
  /** Proxies whose connections' lifetimes go into the spread's averages. */
  private readonly timed = new WeakSet<Proxy>();
  /** A report is due soon (REPORT_DELAY_MS). */
  private reportSoon = false;

  constructor(
    readonly name: string,
    config: ResolvedConfig,
    frontends: readonly FrontendEntry[],
    private readonly log: Logger,
    private readonly send: (msg: FromWorker) => void,
    /** This worker's slot (0-based). */
    slot: number,
    /** spreadConnections as the load balancer started (a reload does not change it). */
    private readonly spreading: SpreadMode,
    /**
     * Hands a connection this worker accepted over to the worker of slot `to`, through the
     * primary, with this worker's count `n` of the frontend's connections.
     */
    private readonly handOff: (f: number, to: number, n: number, client: object) => void,
  ) {
    this.spread = new ConnectionSpread(slot, spreading);
    this.config = config;
    this.lb = lbOf(config, name);
    for (const e of frontends) {
      if (!this.backends.has(e.backend))
        this.backends.set(e.backend, this.newBackend(backendConfig(config, e.backend), config, undefined));
    }
    for (const e of frontends) this.proxies.set(e.id, this.newProxy(e));
  }

  /**
   * Serves a connection of frontend `id`: a socket the primary accepted itself, or the raw handle
   * of one that the worker `from` accepted and handed over (closed when that frontend is gone).
   */
  accept(id: number, client: Socket | RawHandle, from?: { slot: number; n: number }): void {
    const proxy = this.proxies.get(id);
    if (proxy === undefined) {
      if (client instanceof Socket) client.destroy();
      else client.close();
      return;
    }
    if (from !== undefined) this.spread.heard(id, from.slot, from.n);
    if (client instanceof Socket) proxy.accept(client);
    else proxy.acceptRaw(client);
    this.changed();
  }

  /**
   * Accepts frontend `id`'s connections on `handle`, its listening socket; returns this worker's
   * handle of it (the primary keeps one). Rejects when the frontend is unknown or the socket fails.
   */
  async listen(id: number, handle: object): Promise<object | undefined> {
    const proxy = this.proxies.get(id);
    if (proxy === undefined) throw new Error(`no frontend ${id} here`);
    await proxy.listenOn(handle);
    const own = (proxy.server as { _handle?: ListenWrap })._handle;
    if (own !== undefined && this.spreading !== 'off') this.spreadConnections(id, proxy, own);
    return own;
  }

  /**
   * Each connection accepted on `wrap` (frontend `id`'s listening socket) is served here, or
   * handed to a less loaded worker when this one holds too many (connection-spread.ts);
   * the connections of the frontend here are reported to the primary from now on.
   */
  private spreadConnections(id: number, proxy: Proxy, wrap: ListenWrap): void {
    const accept = wrap.onconnection;
    const spread = this.spread;
    const handOff = this.handOff;
    const changed = () => this.changed();
    wrap.onconnection = function (this: ListenWrap, status, client) {
      if (status === 0 && client !== undefined && !proxy.closing) {
        changed();
        const mine = connectionsOf(proxy);
        const to = spread.target(id, mine, performance.now());
        if (to !== undefined) {
          handOff(id, to, mine, client);
          return;
        }
      }
      accept.call(this, status, client);
    };
    if (!this.timed.has(proxy)) {
      this.timed.add(proxy);
      const timing: SpreadTiming = { id, spread, changed };
      proxy.server.on('connection', (socket: TimedSocket) => {
        socket[kTiming] = timing;
        socket[kSince] = performance.now();
        socket.on('close', onTimedClose);
      });
    }
    this.reported.set(id, -1);
    this.report();
  }

  /**
   * Connections came or went: a report goes out shortly, one for a whole burst, and at once when
   * a count fell by half (reportAtOnce).
   */
  private changed(): void {
    if (this.reported.size === 0) return;
    if (this.fellByHalf()) this.report();
    if (this.reportSoon) return;
    this.reportSoon = true;
    setTimeout(() => {
      this.reportSoon = false;
      this.report();
    }, REPORT_DELAY_MS).unref();
  }

  /** Whether a frontend's connections here fell to half of the last report or less (reportAtOnce). */
  private fellByHalf(): boolean {
    for (const [id, last] of this.reported) {
      const p = this.proxies.get(id);
      if (p !== undefined && reportAtOnce(last, connectionsOf(p))) return true;
    }
    return false;
  }

  /** Sends the primary this worker's connections of each frontend it accepts on, if they changed. */
  private report(): void {
    let counts: Array<[number, number]> | undefined;
    for (const [id, last] of this.reported) {
      const p = this.proxies.get(id);
      const n = p === undefined || p.closing ? -1 : connectionsOf(p);
      if (n === last) continue;
      (counts ??= []).push([id, n]);
      if (n === -1) this.reported.delete(id);
      else this.reported.set(id, n);
    }
    if (counts !== undefined) this.send({ t: 'load', counts });
  }

  /** Worker `slot` reported `n` connections of frontend `f` (-1: it stopped accepting on it). */
  loads(f: number, slot: number, n: number): void {
    this.spread.update(f, slot, n);
  }

  /**
   * Stops accepting frontend `id`'s connections (another worker takes them): its connections
   * here finish (within `graceMs`), as on a close.
   */
  unlisten(id: number, graceMs: number): void {
    void this.proxies.get(id)?.close(graceMs);
    this.stopSpreading(id);
  }

  /** Frontend `id` is not accepted here any more: the primary hears it, peers' counts are dropped. */
  private stopSpreading(id: number): void {
    this.spread.forget(id);
    if (!this.reported.has(id)) return;
    this.reported.delete(id);
    this.send({ t: 'load', counts: [[id, -1]] });
  }

  /** The primary's answer to question `id` (the server of a TCP session). */
  answer(id: number, server: string | undefined, sid: number | undefined): void {
    const resolve = this.questions.get(id);
    this.questions.delete(id);
    resolve?.({ server, sid });
  }

  /** The primary picks the servers of frontend `f`'s TCP connections. */
  private pickerFor(f: number): ServerPicker {
    const ask = (question: (id: number) => FromWorker) =>
      new Promise<{ server?: string | undefined; sid?: number | undefined }>((resolve) => {
        const id = this.nextQuestion++;
        this.questions.set(id, resolve);
        this.send(question(id));
      });
    return {
      open: async (ip) => {
        const a = await ask((id) => ({ t: 'tcp-open', id, f, ip }));
        return a.server === undefined || a.sid === undefined ? undefined : { server: a.server, sid: a.sid };
      },
      retry: async (sid, failed) =>
        (await ask((id) => ({ t: 'tcp-retry', id, sid, failed: failed.name }))).server,
      end: (sid) => this.send({ t: 'tcp-end', sid }),
    };
  }

  /** Applies the primary's view of the servers of these backends. */
  applyState(states: readonly BackendState[]): void {
    for (const st of states) {
      const b = this.backends.get(st.name);
      if (b !== undefined) applyBackendState(b, st);
    }
  }

  /**
   * Applies a reload the primary has applied: the same backends are rebuilt (the unchanged ones
   * kept, the others around the servers they keep, see reload/carry-over.ts), proxies of the
   * frontends kept switch to their new backend and timeouts, new frontends get a proxy. Frontends
   * that are gone are closed by the primary's close-frontend, which comes with the reload.
   */
  reload(next: ResolvedConfig, frontends: readonly FrontendEntry[]): void {
    const lb = lbOf(next, this.name);
    const backends = new Map<string, Backend>();
    for (const e of frontends) {
      if (backends.has(e.backend)) continue;
      const bc = backendConfig(next, e.backend);
      const old = this.backends.get(e.backend);
      if (old !== undefined && backendKey(old.config, this.config) === backendKey(bc, next))
        backends.set(e.backend, old);
      else backends.set(e.backend, this.newBackend(bc, next, old));
    }
    const current = [...backends.values()];
    const replaced = [...this.backends].filter(([name, old]) => backends.get(name) !== old);
    for (const [, old] of replaced) {
      old.stopChecks();
      for (const r of retiredServers(old, current)) {
        this.retiring.add(r);
        void retire(r).then(() => this.retiring.delete(r));
      }
    }
    this.backends.clear();
    for (const [name, b] of backends) this.backends.set(name, b);
    for (const [name, old] of replaced) {
      if (old.queued === 0) continue;
      const successor = backends.get(name);
      if (successor === undefined) old.queue.rejectAll('unavailable');
      else old.queue.dispatch(successor.balancer, successor.servers);
    }
    for (const e of frontends) {
      const p = this.proxies.get(e.id);
      if (p === undefined) {
        this.proxies.set(e.id, this.newProxy(e, lb));
        continue;
      }
      p.backend = backends.get(e.backend)!;
      configureProxy(p, lb);
    }
    this.lb = lb;
    this.config = next;
  }

  /** This worker's counters, for the primary's sums. */
  counters(): WorkerCounters {
    let connections = 0;
    for (const p of this.proxies.values()) connections += connectionsOf(p);
    return { connections, backends: [...this.backends.values()].map(backendCounters) };
  }

  /** Closes frontend `id`: its connections finish within `graceMs`, then are closed. */
  async closeFrontend(id: number, graceMs: number): Promise<void> {
    const p = this.proxies.get(id);
    if (p === undefined) return;
    this.stopSpreading(id);
    await p.close(graceMs);
    this.proxies.delete(id);
  }

  /** TCP frontends: closes the established connections to these servers of `backend`; how many. */
  shutdownSessions(backend: string, servers: readonly string[]): number {
    const b = this.backends.get(backend);
    if (b === undefined) return 0;
    let closed = 0;
    for (const p of this.proxies.values()) {
      if (!(p instanceof TcpProxy) || p.backend !== b) continue;
      for (const s of b.servers) if (servers.includes(s.name)) closed += p.shutdownSessionsOf(s);
    }
    return closed;
  }

  /** Closes every frontend (within `graceMs`), then the connection pools. */
  async close(graceMs: number): Promise<void> {
    await Promise.all([...this.proxies.keys()].map((id) => this.closeFrontend(id, graceMs)));
    for (const b of this.backends.values()) b.destroyAgents();
    for (const r of this.retiring) r.server.pool.destroy();
  }

  private newBackend(bc: BackendConfig, all: ResolvedConfig, previous: Backend | undefined): Backend {
    const b = new Backend(
      bc,
      all.servers,
      this.log,
      previous,
      () => new RemotePassiveHealth(bc.name, bc.passiveHealth, this.send),
    );
    let h = this.latency.get(bc.name);
    if (h === undefined) {
      h = new LatencyHistogram();
      this.latency.set(bc.name, h);
    }
    b.latency = h;
    return b;
  }

  private newProxy(e: FrontendEntry, lb = this.lb): Proxy {
    const p = createProxy(e.frontend, this.backends.get(e.backend)!, lb, this.log);
    if (p instanceof TcpProxy) p.picker = this.pickerFor(e.id);
    return p;
  }
}

function lbOf(config: ResolvedConfig, name: string): LoadBalancerConfig {
  const lb = config.loadBalancers.find((l) => l.name === name);
  if (lb === undefined) throw new Error(`no load balancer named ${name} in the config`);
  return lb;
}

function backendConfig(config: ResolvedConfig, name: string): BackendConfig {
  const bc = config.backends.find((b) => b.name === name);
  if (bc === undefined) throw new Error(`no backend named ${name} in the config`);
  return bc;
}
