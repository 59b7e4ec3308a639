/** `tandem stop`: asks the `tandem up` holding this data dir to stop, and waits until it has. */
import { loadConfig } from '../config/load.js';
import { NotRunningError, StartupError } from '../errors.js';
import { lockHolder } from '../orchestrator/state-file.js';
import { parse } from './args.js';

export async function run(argv: string[]): Promise<number> {
  const { values } = parse('stop', argv, { timeout: { type: 'string' } });
  const config = loadConfig({ file: values.config, dataDir: values['data-dir'] });
  const pid = lockHolder(config.paths.dataDir);
  if (pid === undefined) throw new NotRunningError(`Tandem is not running for ${config.paths.dataDir}`);
  process.stdout.write(`stopping Tandem (pid ${pid})…\n`);
  process.kill(pid, 'SIGTERM');
  const timeoutMs = Number(values.timeout ?? 180) * 1000;
  const deadline = Date.now() + timeoutMs;
  while (lockHolder(config.paths.dataDir) !== undefined) {
    if (Date.now() > deadline)
      throw new StartupError(`Tandem (pid ${pid}) is still stopping after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  process.stdout.write('stopped\n');
  return 0;
}
