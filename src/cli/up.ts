/**
 * `tandem up`: bring up every component placed on this machine, show progress, print the URLs and
 * a one-line state per component, and stop everything cleanly on Ctrl-C or SIGTERM.
 */
import { loadConfig } from '../config/load.js';
import { Orchestrator } from '../orchestrator/orchestrator.js';
import { parse } from './args.js';
import { formatTable } from './table.js';

export const USAGE = `usage: tandem up [-c FILE] [-d DIR]

Starts every component the config places on this machine (database nodes, cluster manager,
servers, load balancers), shows progress, prints the URLs and each component's state, then
supervises them until Ctrl-C or SIGTERM, which stops everything cleanly. SIGHUP reloads the load
balancers' config.

options:
  -c, --config FILE     config file (default: ./tandem.yaml, else the built-in topology)
  -d, --data-dir DIR    state directory (default: dataDir of the config, .tandem)`;

export async function run(argv: string[]): Promise<number | undefined> {
  const { values } = parse('up', argv, {});
  const config = loadConfig({ file: values.config, dataDir: values['data-dir'] });
  const t0 = Date.now();
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const width = 16;
  const orchestrator = new Orchestrator(config, {
    onProgress: (component, message) => out(`${(component ?? 'tandem').padEnd(width)} ${message}`),
  });
  out(`Tandem: bringing the stack up (config: ${config.source}; data: ${config.paths.dataDir})`);
  for (const r of orchestrator.remote) out(`${r.id.padEnd(width)} placed on ${r.host}: not started here`);

  let stopping: Promise<void> | undefined;
  const stop = (signal: string) => {
    if (stopping) {
      out(`${signal} again: still stopping cleanly (databases are shutting down); wait a moment`);
      return;
    }
    out(`\n${signal}: stopping the stack`);
    stopping = orchestrator.down();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // SIGHUP reloads, as for nginx and HAProxy: each load balancer reads the config again.
  process.on('SIGHUP', () => {
    for (const id of orchestrator.reload()) out(`${id.padEnd(width)} SIGHUP: reloading the config`);
  });

  await orchestrator.up();
  if (stopping) {
    await stopping;
    return 0;
  }
  // The summary goes out in one write, so a reader of the pipe never sees half of it.
  const summary = [
    `\nTandem is up in ${((Date.now() - t0) / 1000).toFixed(1)} s.\n`,
    ...orchestrator.urls().map((u) => `  ${u.url.padEnd(34)} ${u.label}`),
    '',
    formatTable(
      ['COMPONENT', 'STATE', 'PID', 'ADDRESS', 'ROLE'],
      orchestrator.components.map((c) => {
        const i = c.info();
        return [i.id, i.state, String(i.pid ?? '-'), i.address, i.role ?? '-'];
      }),
    ),
    `\nLogs: ${config.paths.dataDir}/logs/   Status: tandem status   Stop: Ctrl-C or tandem stop`,
  ];
  out(summary.join('\n'));

  await new Promise<void>((resolve) => {
    const wait = setInterval(() => {
      if (stopping) {
        clearInterval(wait);
        stopping.then(resolve, resolve);
      }
    }, 100);
  });
  out('Tandem stopped.');
  return 0;
}
