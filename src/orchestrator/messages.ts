/**
 * Messages a component process sends to `tandem up` over the IPC channel. The orchestrator
 * dispatches them through a table keyed on `type` (see supervisor.ts).
 */
export type ComponentMessage =
  /** A step of a long start-up: shown to the operator as progress. */
  | { type: 'progress'; message: string }
  /** The component serves: its address(es), and for a database node its role. */
  | { type: 'ready'; address: string; role?: string; details?: Record<string, unknown> }
  /** Something the operator should see in `tandem status` changed (health, role, child pids). */
  | { type: 'state'; details: Record<string, unknown> }
  /** The component failed for a reason the operator must read; it exits after sending this. */
  | { type: 'fatal'; message: string; code: string };

export type ComponentMessageType = ComponentMessage['type'];
