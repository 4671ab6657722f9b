// Structured logs (pino, one JSON object a line on stderr): every event has a message and fields;
// a connection's events carry its `conn` id. Everything logs through this small interface.
import { pino, type Logger as Pino } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/**
 * A logger at `level`. Lines go to stderr (synchronously: nothing is lost when the process exits
 * right after), or to `write` (tests, embedders), one JSON line per call.
 */
export function createLogger(level: LogLevel = 'info', write?: (line: string) => void): Logger {
  const destination = write
    ? { write: (chunk: string) => { for (const line of chunk.split('\n')) if (line) write(line); } }
    : pino.destination({ dest: 2, sync: true });
  return adapt(pino({
    level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  }, destination));
}

function adapt(p: Pino): Logger {
  return {
    debug: (message, fields) => p.debug(fields ?? {}, message),
    info: (message, fields) => p.info(fields ?? {}, message),
    warn: (message, fields) => p.warn(fields ?? {}, message),
    error: (message, fields) => p.error(fields ?? {}, message),
    child: (fields) => adapt(p.child(fields)),
  };
}
