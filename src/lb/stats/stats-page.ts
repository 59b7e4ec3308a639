/**
 * The HTML stats page (`GET /` and `GET /stats` on the stats port): one table per backend, one row
 * per server with its state, weight, current and total requests, responses by class and its last
 * health check. Plain HTML and a little CSS, no script; every value from the status is escaped.
 */
import type { WorkerInfo } from '../workers/worker-pool.js';
import type { BackendStatus, LbStatus, ServerStatus } from './status.js';

/** What the page shows as a server's state: the operator's state wins over health. */
export type DisplayState = 'up' | 'down' | 'drain' | 'maint';

/** `maint` or `drain` when the operator set it, else the health: `up` or `down`. */
export function displayState(s: ServerStatus): DisplayState {
  if (s.adminState === 'maint') return 'maint';
  if (s.adminState === 'drain') return 'drain';
  return s.state;
}

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** `value` as HTML text, safe in element content and in quoted attributes. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .2em; } h2 { font-size: 1.1em; margin: 1.6em 0 .3em; }
.meta { color: #666; margin: 0 0 .4em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; } td.text, th.text { text-align: left; }
tr.up td.state { background: #c8f0c8; } tr.down td.state { background: #f4c0c0; }
tr.drain td.state { background: #f6e3a6; } tr.maint td.state { background: #c9d6f2; }
`;

/** The whole page for `status`, as of `now`. */
export function renderStatsPage(status: LbStatus, now: Date = new Date()): string {
  const parts = [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${escapeHtml(status.name)} · Tandem stats</title>`,
    `<style>${STYLE}</style></head><body>`,
    `<h1>${escapeHtml(status.name)}</h1>`,
    `<p class="meta">pid ${escapeHtml(status.pid)} · as of ${escapeHtml(now.toISOString())} · ` +
      '<a href="/status">JSON</a> · <a href="/metrics">Prometheus metrics</a></p>',
    '<h2>Frontends</h2>',
    '<table><thead><tr><th class="text">frontend</th><th class="text">address</th><th class="text">backend</th></tr></thead><tbody>',
    ...status.frontends.map(
      (f) =>
        `<tr><td class="text">${escapeHtml(f.name)}</td><td class="text">${escapeHtml(f.address)}</td>` +
        `<td class="text">${escapeHtml(f.backend)}</td></tr>`,
    ),
    '</tbody></table>',
    ...(status.workers === undefined ? [] : [workersTable(status.workers)]),
    ...status.backends.map((b) => backendTable(b, now)),
    '</body></html>',
  ];
  return `${parts.join('\n')}\n`;
}

/** The worker processes: counters in the backend tables are their sums. */
function workersTable(workers: readonly WorkerInfo[]): string {
  return [
    '<h2>Workers</h2>',
    '<p class="meta">the counters below are summed over the workers</p>',
    '<table><thead><tr><th>worker</th><th>pid</th><th class="text">state</th><th>restarts</th><th>connections</th></tr></thead><tbody>',
    ...workers.map(
      (w) =>
        `<tr class="worker-${escapeHtml(w.state)}">${num(w.id)}${num(w.pid ?? '-')}${text(w.state)}` +
        `${num(w.restarts)}${num(w.connections)}</tr>`,
    ),
    '</tbody></table>',
  ].join('\n');
}

function backendTable(b: BackendStatus, now: Date): string {
  const rows = b.servers.map((s) => serverRow(s, now)).join('\n');
  return [
    `<h2>Backend ${escapeHtml(b.name)}</h2>`,
    `<p class="meta">balance ${escapeHtml(b.balance)} · mode ${escapeHtml(b.mode)} · ` +
      `queued ${escapeHtml(b.queued)}</p>`,
    '<table><thead><tr>',
    '<th class="text">server</th><th class="text">address</th><th class="text">state</th><th>weight</th>',
    '<th class="text">backup</th><th>current</th><th>total</th><th>2xx</th><th>3xx</th><th>4xx</th>',
    '<th>5xx</th><th>failures</th><th class="text">last check</th><th class="text">checked at</th>',
    '</tr></thead><tbody>',
    rows,
    '</tbody></table>',
  ].join('\n');
}

function serverRow(s: ServerStatus, now: Date): string {
  const state = displayState(s);
  const cells = [
    text(s.name),
    text(s.address),
    `<td class="text state">${escapeHtml(state)}</td>`,
    num(s.weight),
    text(s.backup ? 'yes' : 'no'),
    num(s.inFlight),
    num(s.totalRequests),
    num(s.responses['2xx']),
    num(s.responses['3xx']),
    num(s.responses['4xx']),
    num(s.responses['5xx']),
    num(s.failures),
    text(lastCheck(s)),
    text(checkedAt(s, now)),
  ];
  return `<tr class="${state}">${cells.join('')}</tr>`;
}

/** `ok (12 ms)`, `failed: connect ECONNREFUSED (3 ms)`, or `none yet`. */
function lastCheck(s: ServerStatus): string {
  const c = s.check;
  if (c.lastResult === null) return 'none yet';
  const took = c.lastDurationMs === null ? '' : ` (${c.lastDurationMs} ms)`;
  return c.lastResult === 'ok' ? `ok${took}` : `failed: ${c.lastError ?? 'unknown'}${took}`;
}

/** `2026-11-22T10:00:00.000Z (1.2 s ago)`, or `-`. */
function checkedAt(s: ServerStatus, now: Date): string {
  const at = s.check.lastCheckAt;
  if (at === null) return '-';
  const ago = (now.getTime() - Date.parse(at)) / 1000;
  return Number.isFinite(ago) ? `${at} (${Math.max(0, ago).toFixed(1)} s ago)` : at;
}

function text(value: string): string {
  return `<td class="text">${escapeHtml(value)}</td>`;
}

function num(value: number | string): string {
  return `<td>${escapeHtml(value)}</td>`;
}
