/** `tandem stop`: asks the `tandem up` holding this data dir to stop, and waits until it has. */
import { loadConfig } from '../config/load.js';
import { NotRunningError, StartupError } from '../errors.js';
import { lockHolder } from '../orchestrator/state-file.js';
import { parse, seconds } from './args.js';

export const USAGE = `usage: tandem stop [--timeout SECONDS] [-c FILE] [-d DIR]

Asks the \`tandem up\` holding this data dir to stop, and waits until every component has.

options:
  --timeout SECONDS     how long to wait for the stack to stop (default 180)
  -c, --config FILE     config file (default: ./tandem.yaml, else the built-in topology)
  -d, --data-dir DIR    state directory (default: dataDir of the config, .tandem)`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse('stop', argv, { timeout: { type: 'string' } });
  const timeoutMs = seconds('stop', 'timeout', values.timeout, 180) * 1000;
  const config = loadConfig({ file: values.config, dataDir: values['data-dir'] });
  const pid = lockHolder(config.paths.dataDir);
  if (pid === undefined) throw new NotRunningError(`Tandem is not running for ${config.paths.dataDir}`);
  process.stdout.write(`stopping Tandem (pid ${pid})…\n`);
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (lockHolder(config.paths.dataDir) !== undefined) {
    if (Date.now() > deadline)
      throw new StartupError(`Tandem (pid ${pid}) is still stopping after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  process.stdout.write('stopped\n');
  return 0;
}
