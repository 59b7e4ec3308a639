/**
 * `tandem db --node NAME`: run one database node (its agent and engine) until SIGINT/SIGTERM.
 * `tandem db status`: roles, lag, term and the last events of the cluster.
 * `tandem db switchover [--to NODE]`: move the primary role with no loss of acknowledged writes.
 */
import { loadConfig } from '../config/load.js';
import { NodeAgent } from '../db/cluster/node-agent.js';
import { UsageError } from '../errors.js';
import { createLogger } from '../log.js';
import { onShutdown, report } from '../orchestrator/component-process.js';
import { parse } from './args.js';

export const USAGE = `usage: tandem db --node NAME [-c FILE] [-d DIR]
       tandem db status [--json] [-c FILE] [-d DIR]
       tandem db switchover [--to NODE] [--timeout SECONDS] [-c FILE] [-d DIR]

Runs one database node (its agent and its engine); \`db status\` shows roles, lag, term and the
cluster's last events; \`db switchover\` moves the primary role to a replica (or NODE) with no loss
of acknowledged writes.

options:
  -n, --node NAME       database node to run (a name in database.nodes)
  -c, --config FILE     config file (default: ./tandem.yaml, else the built-in topology)
  -d, --data-dir DIR    state directory (default: dataDir of the config, .tandem)`;

export async function run(argv: string[]): Promise<number | undefined> {
  if (argv[0] === 'status') return (await import('./db-status.js')).run(argv.slice(1));
  if (argv[0] === 'switchover') return (await import('./db-switchover.js')).run(argv.slice(1));
  const { values } = parse('db', argv, { node: { type: 'string', short: 'n' } });
  if (!values.node)
    throw new UsageError(
      'db: --node NAME is required (a name from database.nodes); or `tandem db status`, `tandem db switchover [--to NODE]`',
    );
  const config = loadConfig({ file: values.config, dataDir: values['data-dir'] });
  const log = createLogger(`db:${values.node}`);
  const agent = new NodeAgent(
    config,
    values.node,
    log,
    (message) => report(log, { type: 'progress', message }),
    {
      onChange: (snap) =>
        report(log, {
          type: 'state',
          details: { role: snap.role, enginePid: snap.enginePid, term: snap.term, activity: snap.activity },
        }),
    },
  );
  onShutdown(log, () => agent.stop());
  await agent.start();
  const node = config.database!.nodes.find((n) => n.name === values.node)!;
  const snap = agent.snapshot();
  report(log, {
    type: 'ready',
    address: `${config.database!.engine === 'postgres' ? 'postgres' : 'mysql'}://${node.host}:${node.port}`,
    role: snap.role ?? undefined,
    details: { enginePid: snap.enginePid, role: snap.role, term: snap.term },
  });
  return undefined; // keep running: the agent's timer and the signal handlers hold the loop
}
