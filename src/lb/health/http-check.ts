import { type ClientRequest, type IncomingMessage, request } from 'node:http';
import type { HealthCheckConfig } from '../../config/schema.js';
import type { UpstreamServer } from '../backend/upstream-server.js';
import { describeError } from '../describe-error.js';
import type { HealthChangeListener, HealthCheck } from './health-check.js';

/**
 * Active HTTP health check of one server: `GET healthCheck.path` every `interval`, on a new
 * connection each time. A check fails on a connection error, on no response headers within
 * `timeout`, or on a status outside 200-399.
 *
 * The first result decides the initial state at once; after that `rise` successes in a row bring
 * a down server up and `fall` failures in a row take an up server down. Checks of one server never
 * overlap: the next one starts `interval` after the previous one started, and never before it ended.
 */
export class HttpHealthCheck implements HealthCheck {
  readonly firstResult: Promise<void>;
  private resolveFirst!: () => void;
  private timer: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private current: ClientRequest | undefined;
  private startedAt = 0;
  private stopped = false;

  constructor(
    private readonly server: UpstreamServer,
    private readonly config: HealthCheckConfig,
    private readonly onChange: HealthChangeListener,
  ) {
    this.firstResult = new Promise((resolve) => {
      this.resolveFirst = resolve;
    });
  }

  start(): void {
    if (this.stopped || this.timer || this.current) return;
    this.run();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.deadline);
    this.timer = undefined;
    this.deadline = undefined;
    const req = this.current;
    this.current = undefined;
    req?.destroy();
    this.resolveFirst();
  }

  private run(): void {
    this.timer = undefined;
    if (this.stopped) return;
    const { host, port, address } = this.server;
    this.startedAt = performance.now();
    const req = request({
      host,
      port,
      method: 'GET',
      path: this.config.path,
      agent: false,
      headers: { host: address, 'user-agent': 'tandem-health-check', connection: 'close' },
    });
    this.current = req;
    req.on('response', (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      // Only the status matters: drop the connection rather than read the body.
      res.destroy();
      if (status >= 200 && status < 400) this.finish(req, true, `HTTP ${status}`);
      else this.finish(req, false, `HTTP ${status}`);
    });
    req.on('error', (err) => this.finish(req, false, describeError(err)));
    this.deadline = setTimeout(() => {
      this.finish(req, false, `timeout after ${this.config.timeout}ms`);
    }, this.config.timeout);
    this.deadline.unref();
    req.end();
  }

  /** Records the outcome of `req` (once), applies rise/fall, schedules the next check. */
  private finish(req: ClientRequest, ok: boolean, outcome: string): void {
    if (this.current !== req) return;
    this.current = undefined;
    clearTimeout(this.deadline);
    this.deadline = undefined;
    req.destroy();

    const now = performance.now();
    const server = this.server;
    const state = server.check;
    const result = ok ? 'ok' : 'fail';
    const initial = state.lastResult === null;
    state.consecutive = state.lastResult === result ? state.consecutive + 1 : 1;
    state.lastResult = result;
    state.lastError = ok ? null : outcome;
    state.lastCheckAt = Date.now();
    state.lastDurationMs = Math.round(now - this.startedAt);

    const threshold = ok ? this.config.rise : this.config.fall;
    const changed = initial || (server.up !== ok && state.consecutive >= threshold);
    if (changed) {
      server.up = ok;
      this.onChange({
        backend: server.backend,
        server: server.name,
        up: server.up,
        initial,
        consecutive: state.consecutive,
        reason: outcome,
      });
    }
    if (initial) this.resolveFirst();

    if (this.stopped) return;
    const delay = Math.max(0, this.config.interval - (now - this.startedAt));
    this.timer = setTimeout(() => this.run(), delay);
    this.timer.unref();
  }
}
