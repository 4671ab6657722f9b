// The text report of an index run (`serve`, `index`, `scan`): a line of counts, the skipped
// entries by reason and each with its reason, every duplicate copy, and for `scan` what each
// file's parse worked around. Every name and reason goes through printable(): one entry, one line.
import type { Catalogue } from './index/catalogue.js';
import type { IndexedFile } from './index/index-file.js';
import { relativePath, type IndexSummary } from './index/refresh.js';
import { printable } from './printable.js';

/** The report's lines; `notes`: files whose warnings are listed too. */
export function summaryLines(root: string, index: IndexSummary, catalogue: Catalogue, notes: readonly IndexedFile[] = []): string[] {
  const name = (path: string) => printable(relativePath(root, path));
  const lines = [`indexed ${printable(root)}: ${index.files} files, ${catalogue.studyCount} studies, ` +
    `${catalogue.seriesCount} series, ${catalogue.instanceCount} instances, ${catalogue.frameCount} frames; ` +
    `${index.skipped.length} skipped, ${catalogue.duplicates.length} duplicates ` +
    `in ${(index.ms / 1000).toFixed(1)} s (${index.parsed} parsed, ${index.reused} from the saved index)`];
  const byCode = new Map<string, number>();
  for (const s of index.skipped) byCode.set(s.code, (byCode.get(s.code) ?? 0) + 1);
  if (byCode.size) lines.push(`  skipped by reason: ${[...byCode].map(([code, n]) => `${code} ${n}`).join(', ')}`);
  for (const s of index.skipped) lines.push(`  skipped ${printable(s.path)}: ${printable(s.reason)} [${s.code}]`);
  for (const d of catalogue.duplicates) {
    lines.push(`  duplicate ${name(d.path)}: same SOP Instance UID as ${name(d.servedPath)}, which is served`);
  }
  for (const f of notes) for (const w of f.warnings) lines.push(`  note ${name(f.path)}: ${printable(w)}`);
  return lines;
}
