/**
 * Minimal line logger for component processes: `2026-11-22T10:00:00.000Z lb-01 info message`.
 * Components write to stdout/stderr; `tandem up` sends each component's lines to its log file.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const threshold = ORDER[(process.env['TANDEM_LOG_LEVEL'] as Level | undefined) ?? 'info'] ?? 20;

/** Whether lines of `level` are written (TANDEM_LOG_LEVEL, default info). */
export function logLevelEnabled(level: Level): boolean {
  return ORDER[level] >= threshold;
}

/** A logger whose lines carry `component`. */
export function createLogger(component: string): Logger {
  const write = (level: Level, msg: string) => {
    if (ORDER[level] < threshold) return;
    const line = `${new Date().toISOString()} ${component} ${level} ${msg}\n`;
    if (level === 'error' || level === 'warn') process.stderr.write(line);
    else process.stdout.write(line);
  };
  return {
    debug: (m) => write('debug', m),
    info: (m) => write('info', m),
    warn: (m) => write('warn', m),
    error: (m) => write('error', m),
  };
}
