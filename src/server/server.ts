/**
 * One server of the topology (`web-01`): its web server and its application server, started and
 * stopped together. The web server binds first, so a port conflict fails before any application
 * process is spawned.
 */
import type { ResolvedConfig } from '../config/load.js';
import type { ServerConfig } from '../config/schema.js';
import { UsageError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  type AppProcessState,
  type AppProcessStatus,
  AppSupervisor,
  type AppSupervisorOptions,
  appSupervisorOptions,
} from './app-supervisor.js';
import { WebServer } from './web-server.js';

/** What `tandem status` shows of a server. */
export interface ServerStatus {
  readonly name: string;
  /** `http://host:port` of the web server. */
  readonly address: string;
  readonly appPids: (number | undefined)[];
  readonly appStates: AppProcessState[];
  readonly apps: AppProcessStatus[];
}

/** A running server. */
export interface ServerHandle {
  readonly name: string;
  /** `http://host:port` of the web server. */
  readonly address: string;
  status(): ServerStatus;
  /** Calls `listener` after every change of an application process's state or pid. */
  onChange(listener: (status: ServerStatus) => void): () => void;
  /** Resolves true once every application process runs, false after `timeout` milliseconds. */
  whenAppsRunning(timeout: number): Promise<boolean>;
  /** Stops accepting, lets requests in progress finish, then stops the application processes. */
  close(): Promise<void>;
}

/** Settings a caller may override (tests: where the codebase's output goes, timeouts). */
export type ServerOverrides = Partial<
  Pick<AppSupervisorOptions, 'stdout' | 'stderr' | 'readyTimeout' | 'stopTimeout'>
>;

/** The server named `name`; a UsageError listing the known names when there is none. */
export function findServer(config: ResolvedConfig, name: string): ServerConfig {
  const server = config.servers.find((s) => s.name === name);
  if (!server) {
    const known = config.servers.map((s) => s.name).join(', ');
    throw new UsageError(`no server named "${name}" in ${config.source} (known: ${known})`);
  }
  return server;
}

/** Starts the web server, then the application processes, of server `name`. */
export async function startServer(
  config: ResolvedConfig,
  name: string,
  log: Logger,
  overrides: ServerOverrides = {},
): Promise<ServerHandle> {
  const server = findServer(config, name);
  const supervisor = new AppSupervisor({ ...appSupervisorOptions(config, server, log), ...overrides });
  const web = new WebServer({
    name: server.name,
    host: server.host,
    port: server.port,
    staticRoot: config.paths.static,
    upstreams: () => supervisor.running(),
    log,
  });
  await web.listen();
  supervisor.start();

  const status = (): ServerStatus => {
    const apps = supervisor.status();
    return {
      name: server.name,
      address: web.address,
      appPids: apps.map((a) => a.pid),
      appStates: apps.map((a) => a.state),
      apps,
    };
  };
  let closing: Promise<void> | undefined;
  return {
    name: server.name,
    address: web.address,
    status,
    onChange: (listener) => supervisor.onChange(() => listener(status())),
    whenAppsRunning: (timeout) => supervisor.whenAllRunning(timeout),
    close: () => {
      closing ??= web.close().finally(() => supervisor.stop());
      return closing;
    },
  };
}
