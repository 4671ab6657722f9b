// Lines an attacker can cause (sockets that never send their request, never say Hello, upgrades
// refused by the hundred) must not become a flood of log lines: each kind is written at most once
// an interval, and the next one written says how many were left out since (the metrics count
// every one).
import type { Logger } from './log.js';

export class LogThrottle {
  /** By message: when it was last written, and how many were left out since. */
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  warn(message: string, fields: Record<string, unknown>, key = message): void {
    this.write('warn', message, fields, key);
  }

  info(message: string, fields: Record<string, unknown>, key = message): void {
    this.write('info', message, fields, key);
  }

  /** Writes the line unless one of the same `key` was written less than an interval ago. */
  private write(level: 'info' | 'warn', message: string, fields: Record<string, unknown>, key: string): void {
    const at = this.now();
    const last = this.last.get(key);
    if (last && at - last.at < this.intervalMs) {
      last.suppressed++;
      return;
    }
    this.log[level](message, last?.suppressed ? { ...fields, suppressed: last.suppressed } : fields);
    this.last.set(key, { at, suppressed: 0 });
  }
}
