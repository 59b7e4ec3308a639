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
