import type { Contender } from './contender.js';

/** No proxy: the load goes straight to backend web-01. The ceiling every proxy is measured under. */
export const direct: Contender = {
  id: 'direct',
  label: 'direct to a backend',
  layer: 'none',
  unavailable: () => Promise.resolve(undefined),
  version: () => Promise.resolve(`Node.js ${process.version} http server`),
  start: (env) =>
    Promise.resolve({
      port: env.backends[0]!.port,
      pid: undefined,
      stop: () => Promise.resolve(),
    }),
};
