import { BenchError } from '../bench-error.js';
import { findExecutable } from '../executables.js';
import { autocannonScript, createAutocannon } from './autocannon.js';
import type { LoadGenerator } from './load-generator.js';
import { createWrk } from './wrk.js';

/**
 * The load generator to use: `wrk` when installed, else autocannon; `choice` forces one. `dir`
 * is where wrk's report script is written.
 */
export function pickLoadGenerator(choice: 'auto' | 'wrk' | 'autocannon', dir: string): LoadGenerator {
  const wrk = choice === 'autocannon' ? undefined : findExecutable('wrk');
  if (wrk) return createWrk(wrk, dir);
  if (choice === 'wrk') throw new BenchError('wrk is not installed (apt-get install wrk)');
  const script = autocannonScript();
  if (!script) {
    throw new BenchError('neither wrk nor autocannon is installed (apt-get install wrk, or npm install)');
  }
  return createAutocannon(script);
}
