/** `tandem config`: print the effective config as YAML (or `--json`); `--check` only validates. */
import { stringify } from 'yaml';
import { loadConfig } from '../config/load.js';
import { parse } from './args.js';

export const USAGE = `usage: tandem config [--json | --check] [-c FILE] [-d DIR]

Prints the effective config (the file with every default filled in) as YAML, or validates it.

options:
  --json                print it as JSON
  --check               only validate it; exit 0 when it is valid
  -c, --config FILE     config file (default: ./tandem.yaml, else the built-in topology)
  -d, --data-dir DIR    state directory (default: dataDir of the config, .tandem)`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse('config', argv, { json: { type: 'boolean' }, check: { type: 'boolean' } });
  const config = loadConfig({ file: values.config, dataDir: values['data-dir'] });
  if (values.check) {
    process.stdout.write(`config OK (${config.source})\n`);
    return 0;
  }
  const { source, paths: _paths, ...plain } = config;
  if (values.json) process.stdout.write(`${JSON.stringify({ source, ...plain }, null, 2)}\n`);
  else
    process.stdout.write(
      `# effective config, from: ${source}\n# durations are in milliseconds\n${stringify(plain)}`,
    );
  return 0;
}
