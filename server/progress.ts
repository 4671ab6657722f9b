// Progress of a long index run: a bar redrawn in place on a terminal, plain lines (every 2 s and
// at the end) otherwise, so logs and CI output stay readable; or log lines, where the rest of the
// output is JSON logs (a server's stderr that is not a terminal).
import type { RefreshProgress } from './index/refresh.js';
import type { Logger } from './log.js';

interface Output { write(text: string): unknown; isTTY?: boolean; columns?: number }

/** Where a run stands: its rate and how long is left. */
interface Pace { seconds: number; filesPerS: number; etaS: number | undefined; finished: boolean }

/** Calls `report` with the pace at most every `everyMs`, and once at the end; nothing when nothing is parsed. */
function paced(everyMs: number, now: () => number, report: (p: RefreshProgress, pace: Pace) => void): (p: RefreshProgress) => void {
  const start = now();
  let last = -Infinity;
  return (p) => {
    if (p.toParse === 0) return; // nothing to parse: nothing worth reporting
    const t = now();
    const finished = p.done >= p.total;
    if (!finished && t - last < everyMs) return;
    last = t;
    const seconds = Math.max((t - start) / 1000, 1e-3);
    const filesPerS = p.parsed / seconds;
    report(p, { seconds, filesPerS, etaS: filesPerS > 0 ? (p.toParse - p.parsed) / filesPerS : undefined, finished });
  };
}

export function progressReporter(out: Output, label: string, now: () => number = () => performance.now()): (p: RefreshProgress) => void {
  return paced(out.isTTY ? 100 : 2000, now, (p, pace) => {
    const eta = pace.etaS !== undefined ? `ETA ${formatSeconds(pace.etaS)}` : 'ETA …';
    const text = `${p.done}/${p.total} files, ${Math.round(pace.filesPerS)} files/s, ${pace.finished ? `done in ${formatSeconds(pace.seconds)}` : eta}`;
    if (out.isTTY) {
      const width = 30;
      const filled = Math.round((p.done / Math.max(1, p.total)) * width);
      out.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}\x1b[K`);
      if (pace.finished) out.write('\n');
    } else {
      out.write(`${label}: ${text}\n`);
    }
  });
}

/** Progress as log lines (`msg` the label), every 2 s and at the end. */
export function progressLogger(log: Logger, label: string, now: () => number = () => performance.now()): (p: RefreshProgress) => void {
  return paced(2000, now, (p, pace) => log.info(label, {
    done: p.done, total: p.total, filesPerS: Math.round(pace.filesPerS),
    ...(pace.finished ? { seconds: Number(pace.seconds.toFixed(1)) } : pace.etaS !== undefined ? { etaS: Math.round(pace.etaS) } : {}),
  }));
}

function formatSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}
