import { createHash } from 'node:crypto';
import type { BackendConfig } from '../../config/schema.js';
import { type BalancedServer, eligible } from '../balance/balancer.js';
import { cookieValue } from '../balance/cookie-value.js';

/** A server a sticky cookie can name. */
export interface StickyServer extends BalancedServer {
  readonly name: string;
  /** Name of the server's backend. */
  readonly backend: string;
}

/**
 * Sticky sessions by an inserted cookie (HAProxy's `cookie NAME insert indirect`): a request whose
 * cookie names a server goes to that server while it is usable; any other request goes where the
 * balancer sends it, and its response gets a `Set-Cookie` naming the server that answered. A client
 * that already holds the right cookie gets none.
 *
 * The cookie's value is an opaque id, the first 12 characters of the base64url SHA-256 of
 * `backend/server`: it does not show the server's address, and it is the same on every load
 * balancer with the same config. A server at weight 0 still gets its sticky clients (as in
 * HAProxy); drain or disable it to move them. A backup keeps its sticky clients only while
 * backups take traffic (with `preempt: false`, while it is usable). A request whose server is at
 * its `maxconn` is balanced (or queued) as usual, without a new cookie.
 */
export class StickyCookie<S extends StickyServer> {
  /** Cookie name. */
  readonly name: string;
  private readonly byId = new Map<string, S>();
  /** The whole `Set-Cookie` value for each server, made once. */
  private readonly setCookies = new Map<S, string>();
  private readonly active: readonly S[];

  /**
   * `servers` of one backend; `maxAge` in milliseconds (undefined: a session cookie); `preempt`
   * is the backend's setting.
   */
  constructor(
    config: { readonly name: string; readonly maxAge?: number | undefined },
    servers: readonly S[],
    private readonly preempt = true,
  ) {
    this.name = config.name;
    this.active = servers.filter((s) => !s.backup);
    const maxAge = config.maxAge === undefined ? '' : `; Max-Age=${Math.ceil(config.maxAge / 1000)}`;
    for (const s of servers) {
      const id = serverId(s);
      this.byId.set(id, s);
      this.setCookies.set(s, `${this.name}=${id}; Path=/${maxAge}; HttpOnly; SameSite=Lax`);
    }
  }

  /** The server the request's `Cookie` header names (usable or not), or undefined. */
  serverOf(cookieHeader: string | undefined): S | undefined {
    if (cookieHeader === undefined) return undefined;
    const id = cookieValue(cookieHeader, this.name);
    return id === undefined ? undefined : this.byId.get(id);
  }

  /** Whether a request pinned to `s` goes to it now. */
  honors(s: S): boolean {
    if (!s.usable) return false;
    if (!s.backup || !this.preempt) return true;
    for (const a of this.active) if (eligible(a, undefined)) return false;
    return true;
  }

  /**
   * Whether the answer to a request whose cookie named `named` may pin the client anew: not when
   * that server is only full (at its `maxconn`): the request goes elsewhere, and the client keeps
   * its cookie and its server.
   */
  mayRepin(named: S | undefined): boolean {
    return named === undefined || named.maxConn === undefined || named.inFlight < named.maxConn;
  }

  /**
   * Adds a `Set-Cookie` naming `server` to a response's raw header list, unless the request's
   * cookie already named it (`named`, from serverOf).
   */
  addSetCookie(headers: string[], named: S | undefined, server: S): void {
    if (named === server) return;
    const value = this.setCookies.get(server);
    if (value !== undefined) headers.push('Set-Cookie', value);
  }
}

/** The sticky cookie of a backend, or undefined when it has none (`stickyCookie` unset). */
export function createStickyCookie<S extends StickyServer>(
  config: Pick<BackendConfig, 'stickyCookie' | 'preempt'>,
  servers: readonly S[],
): StickyCookie<S> | undefined {
  const sticky = config.stickyCookie;
  return sticky === undefined ? undefined : new StickyCookie(sticky, servers, config.preempt);
}

/** Opaque, stable id of a server in a cookie. */
function serverId(s: StickyServer): string {
  return createHash('sha256').update(`${s.backend}/${s.name}`).digest('base64url').slice(0, 12);
}
