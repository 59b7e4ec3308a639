/** `tandem db --node web-01`: run one database node until SIGINT/SIGTERM. */
import { loadConfig } from '../config/load.js';
import { startDbNode } from '../db/cluster/db-node.js';
import { UsageError } from '../errors.js';
import { createLogger } from '../log.js';
import { onShutdown, report } from '../orchestrator/component-process.js';
import { parse } from './args.js';

export async function run(argv: string[]): Promise<number | undefined> {
  const { values } = parse('db', argv, { node: { type: 'string', short: 'n' } });
  if (!values.node) throw new UsageError('db: --node NAME is required (a name from database.nodes)');
  const config = loadConfig({ file: values.config, dataDir: values['data-dir'] });
  const log = createLogger(`db:${values.node}`);
  let handle: Awaited<ReturnType<typeof startDbNode>> | undefined = undefined;
  onShutdown(log, async () => {
    await handle?.stop();
  });
  handle = await startDbNode(config, values.node, log, (message) =>
    report(log, { type: 'progress', message }),
  );
  handle.engine.onUnexpectedExit((description) => {
    report(log, { type: 'fatal', message: `PostgreSQL ${description}`, code: 'TANDEM_ERR_DATABASE' });
    process.exitCode = 1;
    process.exit();
  });
  const node = config.database!.nodes.find((n) => n.name === values.node)!;
  const role = await handle.role();
  report(log, {
    type: 'ready',
    address: `postgres://${node.host}:${node.port}`,
    role,
    details: { enginePid: handle.engine.pid, role },
  });
  return undefined; // keep running: the engine's child process and the signal handlers hold the loop
}
