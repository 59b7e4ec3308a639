/**
 * `tandem` entry point: finds the command, runs it, and turns a TandemError into a plain message
 * and an exit code. A stack trace is printed only for a bug (an error that is not a TandemError).
 */
import { TandemError, UsageError } from '../errors.js';

type CommandModule = { USAGE: string; run(argv: string[]): Promise<number | undefined> };

const COMMANDS: Record<string, { summary: string; load: () => Promise<CommandModule> }> = {
  up: {
    summary: 'start every component placed on this machine and supervise them',
    load: () => import('./up.js'),
  },
  status: {
    summary: 'show each component: state, pid, address, role (--json)',
    load: () => import('./status.js'),
  },
  cluster: {
    summary: 'run the database cluster manager: failover and switchover',
    load: () => import('./cluster.js'),
  },
  stop: {
    summary: 'stop the stack that `tandem up` runs for this data dir',
    load: () => import('./stop.js'),
  },
  config: {
    summary: 'print the effective config (--check only validates)',
    load: () => import('./config.js'),
  },
  lb: { summary: 'run one load balancer (--name lb-01)', load: () => import('./lb.js') },
  reload: {
    summary: 'apply a changed config to the running load balancers, dropping no connection',
    load: () => import('./reload.js'),
  },
  server: {
    summary: 'run one server: web server + application server (--name web-01)',
    load: () => import('./server.js'),
  },
  db: {
    summary: 'run one database node (--node web-01); `db status`, `db switchover [--to NODE]`',
    load: () => import('./db.js'),
  },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`);
  return [
    'usage: tandem <command> [options]',
    '',
    'commands:',
    ...lines,
    '',
    'common options:',
    '  -c, --config FILE    config file (default: ./tandem.yaml, else the built-in topology)',
    '  -d, --data-dir DIR   state directory (default: dataDir of the config, .tandem)',
    '',
    '`tandem <command> --help` explains one command and its options.',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-v') {
    const { readFileSync } = await import('node:fs');
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    process.stdout.write(`tandem ${pkg.version}\n`);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command "${name}"\n\n${usage()}`);
  const mod = await command.load();
  // `tandem up --help` shows how to use `up`; it must not bring the stack up.
  const optionsEnd = rest.indexOf('--');
  const options = optionsEnd === -1 ? rest : rest.slice(0, optionsEnd);
  if (options.includes('--help') || options.includes('-h')) {
    process.stdout.write(`${mod.USAGE}\n`);
    return 0;
  }
  return (await mod.run(rest)) ?? 0;
}

// `tandem config | head` closes the pipe early: that is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof TandemError) {
      // Under `tandem up`, the orchestrator shows this message beside the component's name.
      if (process.send && process.connected)
        process.send({ type: 'fatal', message: err.message, code: err.code });
      process.stderr.write(`tandem: ${err.message}\n`);
      process.exitCode = err.exitCode;
    } else {
      process.stderr.write(
        `tandem: internal error (this is a bug; please report it):\n${(err as Error)?.stack ?? String(err)}\n`,
      );
      if (process.send && process.connected)
        process.send({
          type: 'fatal',
          message: `internal error: ${(err as Error)?.message}`,
          code: 'TANDEM_ERR_INTERNAL',
        });
      process.exitCode = 70;
    }
    // A component under `tandem up` must exit now, not wait for its open handles.
    if (process.connected) process.disconnect();
  },
);
