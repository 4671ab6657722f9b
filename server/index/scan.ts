// Indexes every file of a folder without saving anything (`dicomstream scan`, tools): the same
// walk and parse as the saved index. A file that cannot be indexed, and an entry the walk leaves
// out, is reported with its reason and skipped; nothing stops the scan. A saved index, when there
// is one, is only read: files unchanged since are taken from it instead of being parsed.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CodedError } from '../../shared/coded-error.js';
import type { InstanceRecord } from '../../shared/index-format.js';
import { isS3Url } from '../archive/s3.js';
import { pushTo } from './index-draft.js';
import { byPath } from './path-order.js';
import type { IndexedFile } from './index-file.js';
import { DEFAULT_INDEX_DIR, IndexStore, type IndexProblem } from './index-store.js';
import { ParsePool } from './parse-pool.js';
import { refreshIndex, statFiles, summaryOf, type IndexSummary, type SkippedFile } from './refresh.js';

export type { SkippedFile };

export interface ScanResult {
  /** Every indexed file, in path order: parsed, or unchanged and read from the saved index. */
  files: IndexedFile[];
  skipped: SkippedFile[];
  /** The counts, as `serve` and `index` report them: entries found (files + skipped), parsed, reused. */
  summary: IndexSummary;
}

export interface ScanOptions {
  onProgress?: (done: number, total: number) => void;
  /**
   * Where the saved index is, as for startServer (a folder; a relative path from where the process runs): files unchanged
   * since it was saved are read from it, not parsed. It is only read (nothing written, no lock
   * taken: a server may be writing it meanwhile), and left out of the walk. Default
   * `<root>/.dicomstream`; false: parse every file.
   */
  indexDir?: string | false;
  /** Also index files through symbolic links leading outside the folder (as `serve --follow-symlinks`). */
  followSymlinks?: boolean;
  /** Worker threads parsing files; default 0: this thread. */
  parseWorkers?: number;
  /** Told of a saved index file not trusted: its files are parsed instead. */
  onIndexProblem?: IndexProblem;
}

/** Every regular file below `root`, in path order; dot-folders (the index) are left out. */
export async function listFiles(root: string): Promise<string[]> {
  return (await statFiles(root)).stamps.map((s) => s.path);
}

export async function scanFolder(root: string, options: ScanOptions = {}): Promise<ScanResult> {
  if (!existsSync(root)) throw new CodedError('NO_SUCH_FOLDER', `no such folder: ${root}`);
  const { indexDir } = options;
  if (typeof indexDir === 'string' && isS3Url(indexDir)) throw new CodedError('BAD_OPTION', 'scan reads a saved index in a folder, not in a bucket');
  const pool = new ParsePool(options.parseWorkers ?? 0);
  try {
    const store = indexDir === false ? undefined : new IndexStore(root, indexDir ? resolve(indexDir) : join(root, DEFAULT_INDEX_DIR), (path) => pool.parse(path, true), options.onIndexProblem);
    if (store) store.readOnly = true;
    // The store is not given to the refresh: nothing is saved.
    const saved = await store?.readCatalogue();
    const result = await refreshIndex(root, saved, pool, undefined, {
      onProgress: options.onProgress && ((p) => options.onProgress!(p.done, p.total)), followSymlinksOutside: options.followSymlinks, exclude: store?.dir,
    });
    const parsed = new Set(result.parsedFiles.map((f) => f.path));
    const kept = store ? await keptFiles(store, result.index.instances.filter((r) => !parsed.has(r.file.path))) : [];
    const files = [...result.parsedFiles, ...kept].sort(byPath);
    const summary = summaryOf(root, result, saved && store?.dir);
    return { files, skipped: summary.skipped, summary };
  } finally {
    await pool.close();
  }
}

/** The saved entries of unchanged files (a series file not trusted: its files parsed). */
async function keptFiles(store: IndexStore, records: InstanceRecord[]): Promise<IndexedFile[]> {
  const bySeries = new Map<string, InstanceRecord[]>();
  for (const r of records) pushTo(bySeries, r.seriesInstanceUid, r);
  const wanted = new Set(records.map((r) => r.file.path));
  const out: IndexedFile[] = [];
  for (const [uid, list] of bySeries) out.push(...(await store.loadSeries(uid, list)).files.filter((f) => wanted.has(f.path)));
  return out;
}
