/**
 * Every failure Tandem reports to a user is a `TandemError` with a stable `code`.
 * The CLI prints `message` (never a stack trace) and exits with `exitCode`.
 */
export class TandemError extends Error {
  /** Stable, documented identifier, e.g. `TANDEM_ERR_CONFIG_INVALID`. */
  readonly code: string;
  /** Process exit code the CLI uses for this error. */
  readonly exitCode: number;

  constructor(message: string, code: string, exitCode = 1, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** The config file is missing, unreadable, not YAML, or breaks a rule of the schema. */
export class ConfigError extends TandemError {
  /** One line per problem, each starting with the config path (`backends[0].servers[1].weight: ...`). */
  readonly problems: string[];

  constructor(source: string, problems: string[]) {
    super(
      `invalid config (${source}):\n${problems.map((p) => `  - ${p}`).join('\n')}`,
      'TANDEM_ERR_CONFIG_INVALID',
      2,
    );
    this.problems = problems;
  }
}

/** Bad command-line usage: unknown command or flag, missing argument. */
export class UsageError extends TandemError {
  constructor(message: string) {
    super(message, 'TANDEM_ERR_USAGE', 2);
  }
}

/** A component could not bind its address because something else already listens there. */
export class PortInUseError extends TandemError {
  constructor(component: string, address: string) {
    super(
      `${component}: cannot listen on ${address}: the address is already in use. ` +
        `Stop whatever listens there, or give ${component} another port in tandem.yaml.`,
      'TANDEM_ERR_PORT_IN_USE',
      1,
    );
  }
}

/** A component failed to start (the message says which and why). */
export class StartupError extends TandemError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'TANDEM_ERR_STARTUP', 1, options);
  }
}

/** The database engine failed: initialisation, cloning, start or stop. */
export class DatabaseError extends TandemError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'TANDEM_ERR_DATABASE', 1, options);
  }
}

/**
 * A replica's primary no longer has the WAL the replica needs to reach a consistent state (it was
 * recycled): streaming cannot resume; the replica must be cloned afresh.
 */
export class WalUnavailableError extends DatabaseError {
  constructor(
    node: string,
    readonly walFile: string,
  ) {
    super(`${node}: its primary no longer has WAL file ${walFile}, which this replica needs to start`);
  }
}

/** Something the stack needs is not on this machine (a binary, a user). */
export class MissingDependencyError extends TandemError {
  constructor(message: string) {
    super(message, 'TANDEM_ERR_MISSING_DEPENDENCY', 1);
  }
}

/** A config reload could not be applied; the running config stays in force. */
export class ReloadError extends TandemError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'TANDEM_ERR_RELOAD', 1, options);
  }
}

/** Nothing is running where a command expected a running stack. */
export class NotRunningError extends TandemError {
  constructor(message: string) {
    super(message, 'TANDEM_ERR_NOT_RUNNING', 3);
  }
}

/** Turns a listen() failure into the error a user should read. */
export function listenError(component: string, address: string, err: unknown): TandemError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EADDRINUSE') return new PortInUseError(component, address);
  if (code === 'EADDRNOTAVAIL')
    return new StartupError(
      `${component}: cannot listen on ${address}: that address does not belong to this machine.`,
    );
  if (code === 'EACCES')
    return new StartupError(`${component}: cannot listen on ${address}: permission denied.`);
  return new StartupError(`${component}: cannot listen on ${address}: ${(err as Error).message}`, {
    cause: err,
  });
}
