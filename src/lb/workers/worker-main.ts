/**
 * Entry point of a load balancer worker process, forked by the primary (primary-plane.ts). It
 * serves the client connections the primary hands it, with the proxies of a WorkerPlane, and
 * does what the primary's messages say, dispatched through a table keyed on the message type.
 * It stops when told to (`shutdown`), and at once when the primary goes away.
 */
import { Socket } from 'node:net';
import type { RawHandle } from '../proxy/injected.js';
import type { Level, Logger } from '../../log.js';
import { logLevelEnabled } from '../../log.js';
import { WorkerPlane } from './data-plane.js';
import type { FromWorker, ToWorker } from './messages.js';

function send(msg: FromWorker): void {
  if (process.connected) process.send!(msg);
}

/**
 * Sends a client connection's raw handle to the primary, for the worker of slot `to`. Its copy
 * here is closed once the message is written (the descriptor then travels with it).
 */
function handOff(f: number, to: number, n: number, client: object): void {
  const handle = client as { close(): void };
  if (!process.connected) {
    handle.close();
    return;
  }
  process.send!({ t: 'handoff', f, to, n } satisfies FromWorker, client as Socket, (err: Error | null) => {
    handle.close();
    if (err) log.warn(`a connection handed over to worker ${to + 1} was lost: ${err.message}`);
  });
}

/** Lines go to the primary, which logs them with its own. */
function line(level: Level): (msg: string) => void {
  return logLevelEnabled(level) ? (msg) => send({ t: 'log', level, msg }) : () => {};
}
const log: Logger = { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };

let plane: WorkerPlane | undefined;

const handlers: { [T in ToWorker['t']]: (m: Extract<ToWorker, { t: T }>, handle?: Socket) => void } = {
  init(m) {
    plane = new WorkerPlane(m.name, m.config, m.frontends, log, send, m.worker - 1, m.spread, handOff);
    plane.applyState(m.state);
    send({ t: 'ready' });
  },
  conn(m, handle) {
    if (handle === undefined) return;
    // A connection the primary accepted comes as a socket; one another worker handed over, as
    // the raw handle it accepted (the proxy makes its socket, as for the connections it accepts).
    const client = handle instanceof Socket ? handle : (handle as unknown as RawHandle);
    if (plane !== undefined) plane.accept(m.f, client, m.from);
    else if (client instanceof Socket) client.destroy();
    else client.close();
  },
  loads(m) {
    plane?.loads(m.f, m.slot, m.n);
  },
  listen(m, handle) {
    if (plane === undefined || handle === undefined) {
      send({ t: 'reply', id: m.id, error: 'no listening socket came with the message' });
      return;
    }
    plane.listen(m.f, handle).then(
      (own) => {
        if (m.copy && own !== undefined && process.connected)
          process.send!({ t: 'reply', id: m.id } satisfies FromWorker, own as Socket, { keepOpen: true });
        else send({ t: 'reply', id: m.id });
      },
      (err: Error) => send({ t: 'reply', id: m.id, error: err.message }),
    );
  },
  unlisten(m) {
    plane?.unlisten(m.f, m.grace);
    send({ t: 'reply', id: m.id });
  },
  answer(m) {
    plane?.answer(m.id, m.server, m.sid);
  },
  state(m) {
    plane?.applyState(m.backends);
  },
  reload(m) {
    plane?.reload(m.config, m.frontends);
  },
  stats(m) {
    send({ t: 'reply', id: m.id, counters: plane?.counters() ?? { connections: 0, backends: [] } });
  },
  ping(m) {
    send({ t: 'reply', id: m.id });
  },
  'close-frontend'(m) {
    void (plane?.closeFrontend(m.f, m.grace) ?? Promise.resolve()).then(() => send({ t: 'reply', id: m.id }));
  },
  'shutdown-sessions'(m) {
    send({ t: 'reply', id: m.id, closed: plane?.shutdownSessions(m.backend, m.servers) ?? 0 });
  },
  shutdown(m) {
    void (plane?.close(m.grace) ?? Promise.resolve()).then(() => {
      if (process.connected)
        process.send!({ t: 'reply', id: m.id } satisfies FromWorker, () => process.exit(0));
      else process.exit(0);
    });
  },
};

process.on('message', (msg: ToWorker, socket?: Socket) => {
  (handlers[msg.t] as (m: ToWorker, socket?: Socket) => void)(msg, socket);
});
// The primary is gone (it crashed, or its process ended without stopping us): so is its listener.
process.on('disconnect', () => process.exit(0));
// Signals sent to the whole process group (Ctrl-C, a terminal closing, `kill -- -PGID`) are for
// the primary, which stops or reloads its workers itself.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {});
send({ t: 'hello' });
