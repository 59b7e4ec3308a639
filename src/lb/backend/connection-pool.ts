import {
  type ConnectionHome,
  type ConnectionUser,
  UpstreamConnection,
} from '../proxy/upstream-connection.js';

/** Idle connections kept per server at most (node:http's Agent `maxFreeSockets` as the proxy used it). */
const MAX_IDLE = 256;

/**
 * The keep-alive connections of the proxy to one server: an idle one is reused for the next request
 * (the most recently used first, so that the others can time out on the server), else a new one is
 * opened. A connection goes back only when its last response said the server keeps it and nothing
 * of the request is still on its way.
 */
export class ConnectionPool implements ConnectionHome {
  private readonly idle: UpstreamConnection[] = [];
  /** Every open connection, idle or not. */
  private readonly all = new Set<UpstreamConnection>();
  private destroyed = false;

  constructor(
    readonly host: string,
    readonly port: number,
  ) {}

  /** Open connections now (idle ones included). */
  get size(): number {
    return this.all.size;
  }

  /** A connection for `user`'s request: an idle one, or a new one (connecting). */
  acquire(user: ConnectionUser): UpstreamConnection {
    let conn = this.idle.pop();
    if (conn === undefined) {
      conn = new UpstreamConnection(this.host, this.port, this);
      this.all.add(conn);
    }
    conn.take(user);
    return conn;
  }

  /** `conn`'s exchange is over: kept for the next request when `reusable`, else closed. */
  release(conn: UpstreamConnection, reusable: boolean): void {
    conn.user = undefined;
    if (reusable && !this.destroyed && !conn.isClosed && this.idle.length < MAX_IDLE) this.idle.push(conn);
    else conn.destroy();
  }

  /** ConnectionHome: `conn` closed. */
  closed(conn: UpstreamConnection): void {
    this.all.delete(conn);
    const i = this.idle.lastIndexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
  }

  /** Closes every connection, idle or carrying a request; later ones are closed when released. */
  destroy(): void {
    this.destroyed = true;
    for (const conn of [...this.all]) conn.destroy();
  }
}
