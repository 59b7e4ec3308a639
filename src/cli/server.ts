/**
 * `tandem server --name web-01`: runs one server (web server + application server) in the
 * foreground until SIGINT/SIGTERM, or until `tandem up`, its parent, goes away.
 */
import { loadConfig } from '../config/load.js';
import { TandemError, UsageError } from '../errors.js';
import { createLogger } from '../log.js';
import { onShutdown, report } from '../orchestrator/component-process.js';
import { findServer, type ServerHandle, type ServerStatus, startServer } from '../server/server.js';
import { parse } from './args.js';

export const USAGE = `usage: tandem server --name NAME [-c FILE] [-d DIR]

Runs the server NAME of the config: its web server (static files of the codebase, everything else
forwarded) and its application server (the codebase's processes, restarted when they crash).

options:
  -n, --name NAME       server to run (a name in servers:, like web-01)
  -c, --config FILE     config file (default: ./tandem.yaml, else the built-in topology)
  -d, --data-dir DIR    state directory (default: dataDir of the config)`;

/** Time `ready` waits for every application process to listen before it is reported anyway. */
const APPS_READY_TIMEOUT = 30_000;

/** Runs `tandem server`; returns once the server is ready (it then runs until a signal stops it). */
export async function run(argv: string[]): Promise<number> {
  const { values } = parse('server', argv, { name: { type: 'string', short: 'n' } });
  const config = loadConfig({ file: values.config, dataDir: values['data-dir'] });
  if (!values.name) {
    const known = config.servers.map((s) => s.name).join(', ');
    throw new UsageError(`server: --name is required (known: ${known})\n\n${USAGE}`);
  }
  const server = findServer(config, values.name);
  const log = createLogger(server.name);

  report(log, {
    type: 'progress',
    message: `starting ${server.app.processes} application process${server.app.processes === 1 ? '' : 'es'}`,
  });
  const started = startServer(config, server.name, log);
  onShutdown(log, async () => {
    // A signal during start-up stops whatever did start.
    const [outcome] = await Promise.allSettled([started]);
    if (outcome.status === 'fulfilled') await outcome.value.close();
  });
  let handle: ServerHandle;
  try {
    handle = await started;
  } catch (err) {
    if (!(err instanceof TandemError)) throw err;
    report(log, { type: 'fatal', message: err.message, code: err.code });
    return err.exitCode;
  }

  let last = '';
  const sendState = (status: ServerStatus) => {
    const details = { appPids: status.appPids.map((p) => p ?? null), appStates: status.appStates };
    const key = JSON.stringify(details);
    if (key === last) return;
    last = key;
    report(log, { type: 'state', details });
  };
  handle.onChange(sendState);
  sendState(handle.status());

  if (!(await handle.whenAppsRunning(APPS_READY_TIMEOUT))) {
    log.warn(`not every application process listens after ${APPS_READY_TIMEOUT}ms; serving anyway`);
  }
  const status = handle.status();
  report(log, {
    type: 'ready',
    address: status.address,
    details: { appPids: status.appPids.map((p) => p ?? null) },
  });
  return 0;
}
