import type { PassiveHealthConfig } from '../../config/schema.js';
import type { PassiveHealthSink } from '../backend/passive-health.js';
import type { UpstreamServer } from '../backend/upstream-server.js';
import type { FromWorker } from './messages.js';

/**
 * Passive health in a worker process: what the proxy sees of a server goes to the primary, whose
 * PassiveHealth counts the errors of every worker together and decides the ejections (which come
 * back in the state messages). So `consecutive5xx: 3` means three in a row across the whole load
 * balancer, as in one process.
 *
 * Only what can change a decision is sent: failures and 5xx answers (when the corresponding limit
 * is on), and good answers only while the primary counts errors of that server (`outlierWatch`),
 * since a good answer then ends the streak. A worker with healthy servers sends nothing per request.
 */
export class RemotePassiveHealth implements PassiveHealthSink {
  constructor(
    private readonly backend: string,
    private readonly config: PassiveHealthConfig,
    private readonly send: (msg: FromWorker) => void,
  ) {}

  response(server: UpstreamServer, status: number): void {
    if (status >= 500 ? this.config.consecutive5xx > 0 : server.outlierWatch)
      this.send({ t: 'passive', b: this.backend, s: server.name, status });
  }

  error(server: UpstreamServer, why: string): void {
    if (this.config.consecutiveErrors > 0 || this.config.consecutive5xx > 0)
      this.send({ t: 'passive', b: this.backend, s: server.name, why });
  }

  stop(): void {
    // The primary keeps the ejection timers.
  }
}
