// Progress of a long index run: a bar redrawn in place on a terminal, plain lines (every 2 s and
// at the end) otherwise, so logs and CI output stay readable.
import type { RefreshProgress } from './index/refresh.js';

interface Output { write(text: string): unknown; isTTY?: boolean; columns?: number }

export function progressReporter(out: Output, label: string, now: () => number = () => performance.now()): (p: RefreshProgress) => void {
  const start = now();
  let lastDraw = -Infinity;
  let drawn = false;
  return (p) => {
    if (p.toParse === 0) return; // nothing to parse: nothing worth a bar
    const t = now();
    const finished = p.done >= p.total;
    if (!finished && t - lastDraw < (out.isTTY ? 100 : 2000)) return;
    lastDraw = t;
    const seconds = Math.max((t - start) / 1000, 1e-3);
    const rate = p.parsed / seconds;
    const left = p.toParse - p.parsed;
    const eta = rate > 0 ? `ETA ${formatSeconds(left / rate)}` : 'ETA …';
    const text = `${p.done}/${p.total} files, ${Math.round(rate)} files/s, ${finished ? `done in ${formatSeconds(seconds)}` : eta}`;
    if (out.isTTY) {
      const width = 30;
      const filled = Math.round((p.done / Math.max(1, p.total)) * width);
      out.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}\x1b[K`);
      drawn = true;
      if (finished && drawn) out.write('\n');
    } else {
      out.write(`${label}: ${text}\n`);
    }
  };
}

function formatSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}
