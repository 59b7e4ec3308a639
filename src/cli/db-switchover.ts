/** `tandem db switchover [--to NODE]`: ask the cluster manager to move the primary role, and wait. */
import { loadConfig } from '../config/load.js';
import { managerAlive, readClusterState, requestSwitchover } from '../db/cluster/cluster-state.js';
import { NotRunningError, StartupError, UsageError } from '../errors.js';
import { parse, seconds } from './args.js';

export async function run(argv: string[]): Promise<number> {
  const { values } = parse('db switchover', argv, { to: { type: 'string' }, timeout: { type: 'string' } });
  const timeoutS = seconds('db switchover', 'timeout', values.timeout, 120);
  const config = loadConfig({ file: values.config, dataDir: values['data-dir'] });
  const db = config.database;
  if (!db) throw new UsageError('db switchover: the config has no database section');
  if (values.to && !db.nodes.some((n) => n.name === values.to))
    throw new UsageError(
      `db switchover: no database node named "${values.to}" (known: ${db.nodes.map((n) => n.name).join(', ')})`,
    );
  const dataDir = config.paths.dataDir;
  const before = readClusterState(dataDir);
  if (!before || !managerAlive(dataDir))
    throw new NotRunningError(
      `no cluster manager is running for ${dataDir}: start the stack with \`tandem up\``,
    );
  if (values.to === before.primary) {
    process.stdout.write(`${values.to} is already the primary (term ${before.term})\n`);
    return 0;
  }
  process.stdout.write(
    `asking for a switchover from ${before.primary}${values.to ? ` to ${values.to}` : ''} (term ${before.term})…\n`,
  );
  requestSwitchover(dataDir, values.to ?? null);
  const deadline = Date.now() + timeoutS * 1000;
  while (Date.now() < deadline) {
    const s = readClusterState(dataDir);
    if (s && s.term > before.term) {
      const e = s.history[s.history.length - 1]!;
      process.stdout.write(`${s.primary} is primary now (term ${s.term}): ${e.note}\n`);
      return 0;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new StartupError(
    'the switchover did not complete in time; see `tandem db status` and the cluster log',
  );
}
