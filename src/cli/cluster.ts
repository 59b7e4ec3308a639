/** `tandem cluster`: run the database cluster manager (failover, switchover) until SIGINT/SIGTERM. */
import { loadConfig } from '../config/load.js';
import { ClusterManager } from '../db/cluster/manager.js';
import { UsageError } from '../errors.js';
import { createLogger } from '../log.js';
import { onShutdown, report } from '../orchestrator/component-process.js';
import { parse } from './args.js';

export const USAGE = `usage: tandem cluster [-c FILE] [-d DIR]

Runs the database cluster manager: watches every node, promotes a replica when the primary is
down (failover), has the old primary rejoin as a replica, and runs switchovers. \`tandem up\` starts
it for you.

options:
  -c, --config FILE     config file (default: ./tandem.yaml, else the built-in topology)
  -d, --data-dir DIR    state directory (default: dataDir of the config, .tandem)`;

export async function run(argv: string[]): Promise<number | undefined> {
  const { values } = parse('cluster', argv, {});
  const config = loadConfig({ file: values.config, dataDir: values['data-dir'] });
  if (!config.database)
    throw new UsageError(`cluster: the config (${config.source}) has no database section`);
  const log = createLogger('cluster');
  const manager = new ClusterManager(config, log, {
    progress: (message) => report(log, { type: 'progress', message }),
    state: (details) => report(log, { type: 'state', details }),
  });
  onShutdown(log, () => manager.stop());
  manager.start();
  const f = config.database.failover;
  report(log, {
    type: 'ready',
    address: `checks every ${f.checkInterval} ms, failover after ${f.timeout} ms${f.enabled ? '' : ' (automatic failover off)'}`,
  });
  return undefined;
}
