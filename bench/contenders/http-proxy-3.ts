import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Contender } from './contender.js';
import { waitUntilServing } from './ready.js';

const SCRIPT = fileURLToPath(new URL('./http-proxy-3-server.js', import.meta.url));
const require = createRequire(import.meta.url);

/** The installed http-proxy-3 version, or undefined when the package is not installed. */
function installedVersion(): string | undefined {
  try {
    const main = require.resolve('http-proxy-3');
    const pkg = main.slice(0, main.lastIndexOf('/dist/')) + '/package.json';
    return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
  } catch {
    return undefined; // not installed: `npm install` brings it (devDependency)
  }
}

/** A Node.js proxy users pick: http-proxy-3, single process. */
export const httpProxy3: Contender = {
  id: 'http-proxy-3',
  label: 'http-proxy-3 (Node.js)',
  layer: 'http',
  unavailable: () =>
    Promise.resolve(installedVersion() ? undefined : 'not installed (npm install, it is a devDependency)'),
  version: () => Promise.resolve(`http-proxy-3 ${installedVersion()}, Node.js ${process.version}`),
  async start(env) {
    const child = env.children.spawn(
      this.label,
      process.execPath,
      [SCRIPT, ...env.backends.map((b) => String(b.port))],
      { raiseFdLimit: true, cwd: env.dir },
    );
    const line = await child.waitForLine('listening port', (l) => l.startsWith('{"port"'), 10_000);
    const port = (JSON.parse(line) as { port: number }).port;
    await waitUntilServing(this.label, port, env.backends, child);
    return { port, pid: child.pid, stop: () => env.children.stop(child) };
  },
};
