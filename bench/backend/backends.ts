/** The two backends every contender sends its requests to, each one its own Node.js process. */
import { fileURLToPath } from 'node:url';
import type { ChildGroup } from '../children.js';
import { httpGet } from '../net.js';

/** A backend the contenders proxy to. */
export interface BackendAddress {
  name: string;
  port: number;
  pid: number;
}

const SCRIPT = fileURLToPath(new URL('./backend-server.js', import.meta.url));

/** Starts backends web-01 and web-02 and waits until each answers its health path. */
export async function startBackends(children: ChildGroup): Promise<BackendAddress[]> {
  return Promise.all(
    ['web-01', 'web-02'].map(async (name) => {
      const child = children.spawn(`backend ${name}`, process.execPath, [SCRIPT, name], {
        raiseFdLimit: true,
      });
      const line = await child.waitForLine('listening port', (l) => l.startsWith('{"port"'), 10_000);
      const port = (JSON.parse(line) as { port: number }).port;
      await httpGet(port, '/healthz');
      return { name, port, pid: child.pid };
    }),
  );
}
