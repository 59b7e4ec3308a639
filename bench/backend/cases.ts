/** The answers the benchmark measures, each one a path of the backends. */

/** Path of the small plain-text answer (`hello from web-01\n`: 18 bytes). */
export const SMALL_PATH = '/';
/** Path of the 64 KiB answer. */
export const BIG_PATH = '/64k';
/** Size of the big answer's body. */
export const BIG_SIZE = 64 * 1024;

/** One kind of request measured at every concurrency. */
export interface BenchCase {
  /** Short id used in options and results: `small`, `64k`. */
  id: string;
  /** Human description for tables. */
  label: string;
  path: string;
  /** Body length every answer must have (checked through each contender before it is measured). */
  minBodyBytes: number;
}

/** Every case, in the order they are measured. */
export const CASES: readonly BenchCase[] = [
  { id: 'small', label: 'small answer (GET /, 18 B of text)', path: SMALL_PATH, minBodyBytes: 10 },
  { id: '64k', label: '64 KiB answer (GET /64k)', path: BIG_PATH, minBodyBytes: BIG_SIZE },
];
