import { TandemError } from '../src/errors.js';

/** The benchmark could not run a step: a contender did not start, a load generator failed. */
export class BenchError extends TandemError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'TANDEM_ERR_BENCH', 1, options);
  }
}
