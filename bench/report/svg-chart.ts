/**
 * The results chart, as hand-written SVG: for each case, throughput (req/s) and p99 latency (ms)
 * by concurrency, one line per contender.
 */
import type { BenchResults, PointResult } from '../results.js';

/** One color per contender id; others cycle through SPARE. */
const COLORS: Record<string, string> = {
  direct: '#7f7f7f',
  'tandem-l7': '#d62728',
  'tandem-l4': '#ff7f0e',
  'haproxy-http': '#1f77b4',
  'haproxy-tcp': '#17becf',
  nginx: '#2ca02c',
  'http-proxy-3': '#9467bd',
};
const SPARE = ['#8c564b', '#e377c2', '#bcbd22'];

const PANEL_W = 440;
const PANEL_H = 270;
const MARGIN = { left: 64, right: 16, top: 30, bottom: 42 };
const GAP = 24;
const TITLE_H = 48;
const LEGEND_ROW_H = 20;

/** XML-escapes text. */
function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** The smallest of 1, 2, 2.5, 5 × 10^n that is ≥ v (v > 0). */
export function niceCeil(v: number): number {
  if (!(v > 0)) return 1;
  const base = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * base >= v) return m * base;
  return 10 * base;
}

/** Axis label: `45k`, `1.2M`, `0.5`, `12`. */
function tickLabel(v: number): string {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(2)}`;
}

interface Series {
  id: string;
  label: string;
  color: string;
  points: Array<{ connections: number; value: number }>;
}

/**
 * One chart panel. `log`: a logarithmic y axis with a gridline per decade (for latencies, which
 * span orders of magnitude); else linear from 0.
 */
function panel(
  x0: number,
  y0: number,
  title: string,
  connections: readonly number[],
  series: readonly Series[],
  log = false,
): string {
  const w = PANEL_W - MARGIN.left - MARGIN.right;
  const h = PANEL_H - MARGIN.top - MARGIN.bottom;
  const left = x0 + MARGIN.left;
  const top = y0 + MARGIN.top;
  const values = series.flatMap((s) => s.points.map((p) => p.value)).filter((v) => Number.isFinite(v));
  const maxValue = Math.max(0, ...values);
  const yMax = niceCeil(maxValue * 1.05);
  const positive = values.filter((v) => v > 0);
  const lo = Math.floor(Math.log10(positive.length > 0 ? Math.min(...positive) : 0.1));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(positive.length > 0 ? Math.max(...positive) : 1)));
  const xOf = (c: number) => {
    const i = connections.indexOf(c);
    return connections.length === 1 ? left + w / 2 : left + (i / (connections.length - 1)) * w;
  };
  const yOf = log
    ? (v: number) => top + h - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * h
    : (v: number) => top + h - (v / yMax) * h;
  const ticks = log
    ? Array.from({ length: hi - lo + 1 }, (_, i) => 10 ** (lo + i))
    : Array.from({ length: 6 }, (_, i) => (yMax / 5) * i);
  const out: string[] = [];
  out.push(`<text x="${left + w / 2}" y="${y0 + 18}" class="title">${esc(title)}</text>`);
  for (const v of ticks) {
    const y = yOf(v);
    out.push(`<line x1="${left}" y1="${y}" x2="${left + w}" y2="${y}" class="grid"/>`);
    out.push(`<text x="${left - 6}" y="${y + 4}" class="ytick">${tickLabel(v)}</text>`);
  }
  for (const c of connections) {
    out.push(`<text x="${xOf(c)}" y="${top + h + 18}" class="xtick">${c}</text>`);
  }
  out.push(`<text x="${left + w / 2}" y="${top + h + 36}" class="axis">concurrent connections</text>`);
  out.push(`<line x1="${left}" y1="${top + h}" x2="${left + w}" y2="${top + h}" class="axisline"/>`);
  for (const s of series) {
    const pts = s.points
      .filter((p) => connections.includes(p.connections) && Number.isFinite(p.value))
      .sort((a, b) => a.connections - b.connections);
    if (pts.length === 0) continue;
    const path = pts.map((p) => `${xOf(p.connections).toFixed(1)},${yOf(p.value).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${path}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const p of pts) {
      out.push(
        `<circle cx="${xOf(p.connections).toFixed(1)}" cy="${yOf(p.value).toFixed(1)}" r="3.5" fill="${s.color}"><title>${esc(`${s.label}, ${p.connections} connections: ${tickLabel(p.value)}`)}</title></circle>`,
      );
    }
  }
  return out.join('\n');
}

/** The whole chart for `results`, as an SVG document. */
export function renderChart(results: BenchResults): string {
  const connections = [...results.settings.connections].sort((a, b) => a - b);
  const measured = results.contenders.filter((c) =>
    results.points.some((p) => p.contender === c.id && !p.failed),
  );
  let spare = 0;
  const color = new Map(measured.map((c) => [c.id, COLORS[c.id] ?? SPARE[spare++ % SPARE.length]!]));
  const cases = results.cases.filter((c) => results.points.some((p) => p.case === c.id));
  const width = 2 * PANEL_W + GAP;
  const legendRows = Math.ceil(measured.length / 3);
  const height = TITLE_H + cases.length * (PANEL_H + GAP) + legendRows * LEGEND_ROW_H + 16;
  const seriesOf = (caseId: string, value: (p: PointResult) => number): Series[] =>
    measured.map((c) => ({
      id: c.id,
      label: c.label,
      color: color.get(c.id)!,
      points: results.points
        .filter((p) => p.contender === c.id && p.case === caseId && !p.failed)
        .map((p) => ({ connections: p.connections, value: value(p) })),
    }));

  const body: string[] = [];
  const heading = `Tandem benchmark, ${results.date.slice(0, 10)}${results.quick ? ' (quick smoke run, not a measurement)' : ''}`;
  body.push(`<text x="${width / 2}" y="22" class="heading">${esc(heading)}</text>`);
  body.push(
    `<text x="${width / 2}" y="40" class="sub">${esc(`${results.machine.cores} cores, ${results.loadGenerator.name}, median of ${results.settings.runs} × ${results.settings.durationSec} s per point`)}</text>`,
  );
  cases.forEach((c, row) => {
    const y = TITLE_H + row * (PANEL_H + GAP);
    const name = c.label.split(' (')[0]!;
    body.push(
      panel(
        0,
        y,
        `${name}: requests/s`,
        connections,
        seriesOf(c.id, (p) => p.rps),
      ),
    );
    body.push(
      panel(
        PANEL_W + GAP,
        y,
        `${name}: p99 latency (ms, log scale)`,
        connections,
        seriesOf(c.id, (p) => p.latencyMs.p99),
        true,
      ),
    );
  });
  const legendTop = TITLE_H + cases.length * (PANEL_H + GAP);
  measured.forEach((c, i) => {
    const x = MARGIN.left + (i % 3) * 290;
    const y = legendTop + Math.floor(i / 3) * LEGEND_ROW_H;
    body.push(
      `<line x1="${x}" y1="${y}" x2="${x + 22}" y2="${y}" stroke="${color.get(c.id)}" stroke-width="3"/>`,
    );
    body.push(`<text x="${x + 28}" y="${y + 4}" class="legend">${esc(c.label)}</text>`);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">
<style>
  .heading { font-size: 16px; font-weight: bold; text-anchor: middle; }
  .sub { font-size: 12px; fill: #555; text-anchor: middle; }
  .title { font-size: 13px; font-weight: bold; text-anchor: middle; }
  .ytick { font-size: 11px; fill: #444; text-anchor: end; }
  .xtick { font-size: 11px; fill: #444; text-anchor: middle; }
  .axis { font-size: 11px; fill: #666; text-anchor: middle; }
  .legend { font-size: 12px; }
  .grid { stroke: #e4e4e4; stroke-width: 1; }
  .axisline { stroke: #999; stroke-width: 1; }
</style>
<rect width="100%" height="100%" fill="white"/>
${body.join('\n')}
</svg>
`;
}
