/**
 * Prometheus metrics of one load balancer, served at `GET /metrics` on the stats port.
 *
 * The proxy pays nothing for most of them: request and response counts, in-flight requests,
 * health and weights are plain fields the proxy and the health checks already keep on each
 * `UpstreamServer`; they are read when Prometheus scrapes (prom-client `collect()` callbacks).
 * Only the latency histogram is written per request, through `LatencyHistogram.observe()`.
 */
import { Counter, Gauge, type Metric, Registry } from 'prom-client';
import type { Backend } from '../backend/backend.js';
import type { UpstreamServer } from '../backend/upstream-server.js';
import type { HealthChange } from '../health/health-check.js';
import type { WorkerInfo } from '../workers/worker-pool.js';
import { LatencyHistogram } from './latency-histogram.js';

const SERVER_LABELS = ['backend', 'server'] as const;
const RESPONSE_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
const ADMIN_STATES = ['ready', 'drain', 'maint'] as const;

/** Health transitions of one server, kept across reloads. */
interface Transitions {
  backend: string;
  server: string;
  up: number;
  down: number;
}

/** The metrics registry of one load balancer. */
export class LbMetrics {
  readonly registry = new Registry();
  /** Latency histogram per backend name: kept when a reload replaces the Backend object. */
  private readonly latency = new Map<string, LatencyHistogram>();
  private readonly transitions = new Map<string, Transitions>();
  private readonly reloads = { ok: 0, failed: 0, lastOk: 0 };

  /**
   * `backends` gives the backends running now (it changes on reload); `workers`, the worker
   * processes of a primary (their counters are already summed into the backends' servers).
   */
  constructor(
    private readonly backends: () => Iterable<Backend>,
    workers?: () => readonly WorkerInfo[],
  ) {
    const registers = [this.registry];
    const { transitions, reloads } = this;
    const servers = function* (): Generator<UpstreamServer> {
      for (const b of backends()) yield* b.servers;
    };
    const labels = (s: UpstreamServer) => ({ backend: s.backend, server: s.name });

    new Counter({
      name: 'tandem_server_requests_total',
      help: 'Requests sent to the server (every attempt, retries included).',
      labelNames: SERVER_LABELS,
      registers,
      collect() {
        this.reset();
        for (const s of servers()) this.inc(labels(s), s.totalRequests);
      },
    });
    new Counter({
      name: 'tandem_server_responses_total',
      help: 'Responses received from the server, by status class (code="2xx").',
      labelNames: [...SERVER_LABELS, 'code'],
      registers,
      collect() {
        this.reset();
        for (const s of servers())
          for (let c = 1; c <= 5; c++)
            this.inc({ ...labels(s), code: RESPONSE_CLASSES[c - 1]! }, s.responses[c] ?? 0);
      },
    });
    new Counter({
      name: 'tandem_server_failures_total',
      help: 'Requests that failed on the server: connect errors, timeouts, resets.',
      labelNames: SERVER_LABELS,
      registers,
      collect() {
        this.reset();
        for (const s of servers()) this.inc(labels(s), s.failures);
      },
    });
    new Gauge({
      name: 'tandem_server_up',
      help: '1 when the server passes its health checks, else 0.',
      labelNames: SERVER_LABELS,
      registers,
      collect() {
        this.reset();
        for (const s of servers()) this.set(labels(s), s.up ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tandem_server_admin_state',
      help: 'Operator state of the server: 1 for the current state (ready, drain or maint), 0 for the others.',
      labelNames: [...SERVER_LABELS, 'state'],
      registers,
      collect() {
        this.reset();
        for (const s of servers())
          for (const state of ADMIN_STATES) this.set({ ...labels(s), state }, s.adminState === state ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tandem_server_weight',
      help: 'Weight of the server (as configured or set through the admin API).',
      labelNames: SERVER_LABELS,
      registers,
      collect() {
        this.reset();
        for (const s of servers()) this.set(labels(s), s.weight);
      },
    });
    new Gauge({
      name: 'tandem_server_in_flight',
      help: 'Requests being proxied to the server now.',
      labelNames: SERVER_LABELS,
      registers,
      collect() {
        this.reset();
        for (const s of servers()) this.set(labels(s), s.reportedInFlight ?? s.inFlight);
      },
    });
    new Gauge({
      name: 'tandem_server_check_success',
      help: 'Result of the last health check: 1 passed, 0 failed (absent before the first check).',
      labelNames: SERVER_LABELS,
      registers,
      collect() {
        this.reset();
        for (const s of servers())
          if (s.check.lastResult !== null) this.set(labels(s), s.check.lastResult === 'ok' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tandem_server_check_timestamp_seconds',
      help: 'Time the last health check ended, in seconds since the epoch.',
      labelNames: SERVER_LABELS,
      registers,
      collect() {
        this.reset();
        for (const s of servers())
          if (s.check.lastCheckAt > 0) this.set(labels(s), s.check.lastCheckAt / 1000);
      },
    });
    new Gauge({
      name: 'tandem_server_check_duration_seconds',
      help: 'Duration of the last health check.',
      labelNames: SERVER_LABELS,
      registers,
      collect() {
        this.reset();
        for (const s of servers())
          if (s.check.lastResult !== null) this.set(labels(s), s.check.lastDurationMs / 1000);
      },
    });
    new Counter({
      name: 'tandem_server_check_transitions_total',
      help: 'Health state changes of the server decided by its checks (to="up" or to="down").',
      labelNames: [...SERVER_LABELS, 'to'],
      registers,
      collect() {
        this.reset();
        for (const t of transitions.values()) {
          this.inc({ backend: t.backend, server: t.server, to: 'up' }, t.up);
          this.inc({ backend: t.backend, server: t.server, to: 'down' }, t.down);
        }
      },
    });
    new Gauge({
      name: 'tandem_backend_queue_length',
      help: 'Requests waiting in the backend queue for a server slot (maxconn).',
      labelNames: ['backend'],
      registers,
      collect() {
        this.reset();
        for (const b of backends()) this.set({ backend: b.name }, b.queued);
      },
    });
    new Gauge({
      name: 'tandem_backend_servers_usable',
      help: 'Servers of the backend that may take new requests now (healthy and ready).',
      labelNames: ['backend'],
      registers,
      collect() {
        this.reset();
        for (const b of backends())
          this.set(
            { backend: b.name },
            b.servers.reduce((n, s) => n + (s.usable ? 1 : 0), 0),
          );
      },
    });
    this.registry.registerMetric(this.latencyMetric() as unknown as Metric);
    new Counter({
      name: 'tandem_config_reloads_total',
      help: 'Config reloads, by result (applied, or rejected with the running config kept).',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        this.inc({ result: 'applied' }, reloads.ok);
        this.inc({ result: 'rejected' }, reloads.failed);
      },
    });
    new Gauge({
      name: 'tandem_config_last_reload_success_timestamp_seconds',
      help: 'Time of the last applied config reload (or of the start), in seconds since the epoch.',
      registers,
      collect() {
        this.set(reloads.lastOk / 1000);
      },
    });
    this.reloads.lastOk = Date.now();
    if (workers !== undefined) {
      const worker = (w: WorkerInfo) => ({ worker: String(w.id) });
      new Gauge({
        name: 'tandem_lb_worker_up',
        help: '1 when the worker process takes connections, else 0 (starting, restarting).',
        labelNames: ['worker'],
        registers,
        collect() {
          this.reset();
          for (const w of workers()) this.set(worker(w), w.state === 'ready' ? 1 : 0);
        },
      });
      new Gauge({
        name: 'tandem_lb_worker_connections',
        help: 'Client connections open in the worker process.',
        labelNames: ['worker'],
        registers,
        collect() {
          this.reset();
          for (const w of workers()) this.set(worker(w), w.connections);
        },
      });
      new Counter({
        name: 'tandem_lb_worker_restarts_total',
        help: 'Times the worker process was restarted after it ended unexpectedly.',
        labelNames: ['worker'],
        registers,
        collect() {
          this.reset();
          for (const w of workers()) this.inc(worker(w), w.restarts);
        },
      });
    }
    new Gauge({
      name: 'process_resident_memory_bytes',
      help: 'Resident memory size of the load balancer process, in bytes.',
      registers,
      collect() {
        this.set(process.memoryUsage.rss());
      },
    });
    new Counter({
      name: 'process_cpu_seconds_total',
      help: 'User and system CPU time of the load balancer process, in seconds.',
      registers,
      collect() {
        const { user, system } = process.cpuUsage();
        this.reset();
        this.inc((user + system) / 1e6);
      },
    });
    new Gauge({
      name: 'process_start_time_seconds',
      help: 'Start time of the load balancer process, in seconds since the epoch.',
      registers,
    }).set(Math.round(Date.now() / 1000 - process.uptime()));
  }

  /** Content-Type of `metrics()`: the Prometheus text format. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric in the Prometheus text format, read now. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  /** The latency histogram of backend `name`, created on first use and kept across reloads. */
  latencyOf(name: string): LatencyHistogram {
    let h = this.latency.get(name);
    if (h === undefined) {
      h = new LatencyHistogram();
      this.latency.set(name, h);
    }
    return h;
  }

  /** Counts a health transition (the initial state of a server is not a transition). */
  healthChanged(change: HealthChange): void {
    if (change.initial) return;
    const key = `${change.backend}\0${change.server}`;
    let t = this.transitions.get(key);
    if (t === undefined) {
      t = { backend: change.backend, server: change.server, up: 0, down: 0 };
      this.transitions.set(key, t);
    }
    if (change.up) t.up++;
    else t.down++;
  }

  /** Counts a config reload. */
  reloaded(applied: boolean): void {
    if (applied) {
      this.reloads.ok++;
      this.reloads.lastOk = Date.now();
    } else {
      this.reloads.failed++;
    }
  }

  /**
   * `tandem_http_request_duration_seconds`, as a metric object the registry formats: prom-client's
   * own Histogram would look its labels up on every observation; this one reads the backends'
   * LatencyHistograms at scrape time.
   */
  private latencyMetric() {
    const name = 'tandem_http_request_duration_seconds';
    const latency = this.latency;
    return {
      name,
      help: 'Time from a request (its headers read) to the end of its response, per backend.',
      type: 'histogram',
      aggregator: 'sum',
      get() {
        const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
        for (const [backend, h] of latency) {
          const cumulative = h.cumulative();
          h.bounds.forEach((le, i) =>
            values.push({ metricName: `${name}_bucket`, labels: { backend, le }, value: cumulative[i]! }),
          );
          values.push({ metricName: `${name}_bucket`, labels: { backend, le: '+Inf' }, value: h.count });
          values.push({ metricName: `${name}_sum`, labels: { backend }, value: h.sum });
          values.push({ metricName: `${name}_count`, labels: { backend }, value: h.count });
        }
        return Promise.resolve({
          name,
          help: this.help,
          type: this.type,
          aggregator: this.aggregator,
          values,
        });
      },
    };
  }
}
