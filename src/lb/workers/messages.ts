/**
 * The messages between a load balancer's primary process and its workers (see primary-plane.ts
 * and worker-main.ts), over the IPC channel of each worker (structured clone serialization).
 *
 * The primary owns everything that must be the same for every worker: the config, health (active
 * checks and the passive-health decisions), operator changes, the listening sockets (which it
 * shares with the workers: they accept the connections). A worker owns the connections it
 * accepts and the requests on them, and counts them.
 *
 * Requests that wait for an answer carry an `id`; the answer is a `reply` with the same `id`.
 */
import type { ResolvedConfig } from '../../config/load.js';
import type { FrontendConfig, SpreadMode } from '../../config/schema.js';
import type { Level } from '../../log.js';
import type { BackendCounters, BackendState } from './server-state.js';

/** A frontend as the workers know it: the primary's listener `id`, its config and its backend's name. */
export interface FrontendEntry {
  id: number;
  frontend: FrontendConfig;
  backend: string;
}

/** Primary → worker. */
export type ToWorker =
  /** The first message: build the proxies of `frontends`, apply `state`, then answer `ready`. */
  | {
      t: 'init';
      worker: number;
      /** spreadConnections as the load balancer started (a reload does not change it). */
      spread: SpreadMode;
      name: string;
      config: ResolvedConfig;
      frontends: FrontendEntry[];
      state: BackendState[];
    }
  /**
   * Sent with frontend `f`'s listening socket: accept its connections (as well as any other
   * worker told so). Answered; with `copy`, the answer carries the worker's own handle of the
   * socket, which the primary keeps (it never accepts on it itself).
   */
  | { t: 'listen'; id: number; f: number; copy: boolean }
  /**
   * Stop accepting connections of frontend `f` (another worker takes them); the open ones here
   * finish within `grace` ms, as on a close. Answered at once.
   */
  | { t: 'unlisten'; id: number; f: number; grace: number }
  /**
   * Sent with a client connection's socket the primary accepted itself, or that another worker
   * handed over (`handoff`; `from` is its slot and its count of the frontend's connections then):
   * serve it on frontend `f`.
   */
  | { t: 'conn'; f: number; from?: { slot: number; n: number } }
  /**
   * Worker `slot` holds `n` connections of frontend `f` (-1: it stopped accepting on it), for
   * the workers to keep them even (connection-spread.ts).
   */
  | { t: 'loads'; f: number; slot: number; n: number }
  /**
   * The answer to the worker's question `id` (tcp-open, tcp-retry): the server for the
   * connection, and its session id, if any server can take it.
   */
  | { t: 'answer'; id: number; server?: string | undefined; sid?: number | undefined }
  /** Health, operator state, ejections and panic mode of the servers of some backends. */
  | { t: 'state'; backends: BackendState[] }
  /** A config reload was applied: rebuild what changed; `frontends` is the whole new list. */
  | { t: 'reload'; config: ResolvedConfig; frontends: FrontendEntry[] }
  /** Answer with this worker's counters (`reply` with `counters`). */
  | { t: 'stats'; id: number }
  /** Answer at once: every message sent before this one has been applied. */
  | { t: 'ping'; id: number }
  /** Stop serving frontend `f`: its connections finish within `grace` ms, then are closed; answer when done. */
  | { t: 'close-frontend'; id: number; f: number; grace: number }
  /** TCP frontends: close the established connections to these servers; answer with how many. */
  | { t: 'shutdown-sessions'; id: number; backend: string; servers: string[] }
  /** Stop: every frontend closes as with close-frontend; answer when done, then exit. */
  | { t: 'shutdown'; id: number; grace: number };

/** What a worker's counters answer holds. */
export interface WorkerCounters {
  /** Client connections open in this worker now. */
  connections: number;
  backends: BackendCounters[];
}

/** Worker → primary. */
export type FromWorker =
  /** The worker listens for messages: the primary may send `init`. */
  | { t: 'hello' }
  /** `init` applied: the worker takes connections. */
  | { t: 'ready' }
  | { t: 'log'; level: Level; msg: string }
  /** Passive health: server `s` of backend `b` answered `status`, or failed (`why`). */
  | { t: 'passive'; b: string; s: string; status: number; why?: undefined }
  | { t: 'passive'; b: string; s: string; status?: undefined; why: string }
  /** The answer to the request `id` (an error message when it failed: `listen`). */
  | { t: 'reply'; id: number; counters?: WorkerCounters; closed?: number; error?: string }
  /** A new TCP connection of frontend `f` from `ip`: which server? (answered with `answer`) */
  | { t: 'tcp-open'; id: number; f: number; ip: string }
  /** TCP session `sid` could not connect to its server `failed`: which one next? (answered with `answer`) */
  | { t: 'tcp-retry'; id: number; sid: number; failed: string }
  /** TCP session `sid` no longer holds a connection to its server. */
  | { t: 'tcp-end'; sid: number }
  /**
   * This worker's open connections of the frontends it accepts on, those that changed since its
   * last report: [frontend id, count], a count of -1 when it stopped accepting on the frontend.
   */
  | { t: 'load'; counts: Array<[number, number]> }
  /**
   * Sent with a client connection this worker accepted (a raw handle, nothing read from it) but
   * holds more than its share of frontend `f`'s (`n`, not counting this one): serve it in the
   * worker of slot `to`.
   */
  | { t: 'handoff'; f: number; to: number; n: number };
