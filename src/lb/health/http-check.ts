import { type IncomingMessage, request } from 'node:http';
import type { HealthCheckConfig } from '../../config/schema.js';
import type { UpstreamServer } from '../backend/upstream-server.js';
import { describeError } from '../describe-error.js';
import { ActiveHealthCheck } from './active-check.js';
import { type BodyMatcher, bodyMatcher, MAX_CHECK_BODY, statusMatcher } from './expect.js';
import type { CheckTiming, HealthChangeListener, Probe, ProbeResult, ProbeTarget } from './health-check.js';

/** What an HTTP check sends and expects; `method` defaults to GET, `expectStatus` to 200-399. */
export type HttpProbeConfig = Pick<HealthCheckConfig, 'path'> &
  Partial<Pick<HealthCheckConfig, 'method' | 'expectStatus' | 'expectBody'>>;

/**
 * One HTTP check: `method path` on a new connection (`Connection: close`). It passes when the
 * status is in `expectStatus` and, if `expectBody` is set, the body (its first 64 KiB) contains
 * that text or matches that `/regex/`. Without `expectBody` the body is not read.
 */
export class HttpProbe implements Probe {
  private readonly method: string;
  private readonly path: string;
  private readonly statusOk: (status: number) => boolean;
  private readonly body: BodyMatcher | undefined;

  constructor(config: HttpProbeConfig) {
    this.method = config.method ?? 'GET';
    this.path = config.path;
    this.statusOk = statusMatcher(config.expectStatus ?? '200-399');
    this.body = config.expectBody === undefined ? undefined : bodyMatcher(config.expectBody);
  }

  run(target: ProbeTarget, signal: AbortSignal): Promise<ProbeResult> {
    return new Promise((resolve) => {
      const req = request({
        host: target.host,
        port: target.port,
        method: this.method,
        path: this.path,
        agent: false,
        headers: { host: target.address, 'user-agent': 'tandem-health-check', connection: 'close' },
      });
      let settled = false;
      const settle = (ok: boolean, outcome: string) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        req.destroy();
        resolve({ ok, outcome });
      };
      const onAbort = () => settle(false, 'aborted');
      signal.addEventListener('abort', onAbort);
      req.on('response', (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        const outcome = `HTTP ${status}`;
        // Without a body to match, only the status matters: the connection is dropped unread.
        if (!this.statusOk(status) || this.body === undefined) settle(this.statusOk(status), outcome);
        else this.readBody(res, this.body, outcome, settle);
      });
      req.on('error', (err) => settle(false, describeError(err)));
      req.end();
    });
  }

  /** Reads up to MAX_CHECK_BODY bytes of the body and settles on whether they match. */
  private readBody(
    res: IncomingMessage,
    matcher: BodyMatcher,
    outcome: string,
    settle: (ok: boolean, outcome: string) => void,
  ): void {
    const chunks: Buffer[] = [];
    let length = 0;
    const judge = () => {
      const body = Buffer.concat(chunks).subarray(0, MAX_CHECK_BODY).toString('utf8');
      if (matcher.test(body)) settle(true, outcome);
      else settle(false, `${outcome}, ${matcher.mismatch}`);
    };
    res.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= MAX_CHECK_BODY) judge();
    });
    res.on('end', judge);
    res.on('error', (err) => settle(false, describeError(err)));
    // After 'end' this is a no-op; before it, the server cut the body short.
    res.on('close', () => settle(false, `${outcome}, connection closed before the end of the body`));
  }
}

/** An active health check of `server` by HTTP (see ActiveHealthCheck and HttpProbe). */
export class HttpHealthCheck extends ActiveHealthCheck {
  constructor(server: UpstreamServer, config: HttpProbeConfig & CheckTiming, onChange: HealthChangeListener) {
    super(server, new HttpProbe(config), config, onChange);
  }
}
