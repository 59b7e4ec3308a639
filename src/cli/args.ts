/** Small wrapper over node:util parseArgs that reports bad usage as a UsageError. */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { UsageError } from '../errors.js';

export const COMMON_OPTIONS = {
  config: { type: 'string', short: 'c' },
  'data-dir': { type: 'string', short: 'd' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Parses argv with the common options plus `options`; throws UsageError on an unknown flag. */
export function parse<O extends NonNullable<ParseArgsConfig['options']>>(
  command: string,
  argv: string[],
  options: O,
) {
  try {
    return parseArgs({
      args: argv,
      options: { ...COMMON_OPTIONS, ...options },
      allowPositionals: false,
      strict: true,
    });
  } catch (err) {
    throw new UsageError(`${command}: ${(err as Error).message.replace(/\. To specify.*$/s, '')}`);
  }
}

/**
 * Reads a `--timeout`-like option given in seconds: `fallback` when absent, a UsageError naming the
 * option when it is not a positive number.
 */
export function seconds(
  command: string,
  option: string,
  value: string | undefined,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0)
    throw new UsageError(`${command}: --${option} must be a positive number of seconds, got "${value}"`);
  return n;
}
