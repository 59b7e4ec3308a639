/** Number formats shared by the tables. */

/** `12,345`; `–` for a missing or non-finite value. */
export function formatCount(n: number | undefined): string {
  return n === undefined || !Number.isFinite(n) ? '–' : Math.round(n).toLocaleString('en-US');
}

/** Milliseconds with three significant digits at most two decimals: `0.42`, `3.15`, `12.4`, `230`. */
export function formatMs(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '–';
  if (n < 10) return n.toFixed(2);
  if (n < 100) return n.toFixed(1);
  return n.toFixed(0);
}

/**
 * The lowest and highest of `values`: `7,518–8,887`; one value alone, or `–` for none. How far
 * apart a point's runs were, so that a difference within it is read as noise.
 */
export function formatRange(values: readonly number[]): string {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return '–';
  const lo = Math.min(...finite);
  const hi = Math.max(...finite);
  return Math.round(lo) === Math.round(hi) ? formatCount(lo) : `${formatCount(lo)}–${formatCount(hi)}`;
}

/** A ratio: `0.83×`. */
export function formatRatio(n: number | undefined): string {
  return n === undefined || !Number.isFinite(n) ? '–' : `${n.toFixed(2)}×`;
}

/** `n` with `digits` decimals and a unit, or `–`. */
export function formatUnit(n: number | undefined, digits: number, unit: string): string {
  return n === undefined || !Number.isFinite(n) ? '–' : `${n.toFixed(digits)}${unit}`;
}
