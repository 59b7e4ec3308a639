const MIB = 1024 * 1024;
const UNITS: Record<string, number> = { MB: MIB, GB: 1024 * MIB, TB: 1024 * 1024 * MIB };

/**
 * Parses a size of the database's log written as "512MB", "4GB" or "1TB" (binary units, as
 * PostgreSQL reads them), or "unlimited". Returns mebibytes (-1 for unlimited), or undefined when
 * the value is not such a size.
 */
export function parseLogSize(value: unknown): number | undefined {
  if (value === 'unlimited') return -1;
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+)\s*(MB|GB|TB)\s*$/i.exec(value);
  if (!m) return undefined;
  const mib = (Number(m[1]) * UNITS[m[2]!.toUpperCase()]!) / MIB;
  return Number.isSafeInteger(mib) ? mib : undefined;
}
