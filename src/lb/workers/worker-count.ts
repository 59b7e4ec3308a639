import { availableParallelism } from 'node:os';
import type { LoadBalancerConfig } from '../../config/schema.js';

/** The number of workers `workers` asks for: `auto` is one per core (os.availableParallelism()). */
export function workerCount(workers: LoadBalancerConfig['workers']): number {
  return workers === 'auto' ? availableParallelism() : workers;
}
