// Indexes every file of a folder without saving anything (`dicomstream scan`, tools): the same
// walk and parse as the saved index, in this thread. A file that cannot be indexed is reported
// with its reason and skipped; nothing stops the scan.
import type { IndexedFile } from './index-file.js';
import { ParsePool } from './parse-pool.js';
import { refreshIndex, statFiles, summaryOf, type SkippedFile } from './refresh.js';

export type { SkippedFile };

export interface ScanResult {
  files: IndexedFile[];
  skipped: SkippedFile[];
}

export interface ScanOptions {
  onProgress?: (done: number, total: number) => void;
}

/** Every regular file below `root`, in path order; dot-folders (the index) are left out. */
export async function listFiles(root: string): Promise<string[]> {
  return (await statFiles(root)).stamps.map((s) => s.path);
}

export async function scanFolder(root: string, options: ScanOptions = {}): Promise<ScanResult> {
  const result = await refreshIndex(root, undefined, new ParsePool(0), undefined, {
    onProgress: options.onProgress && ((p) => options.onProgress!(p.done, p.total)),
  });
  return { files: result.parsedFiles, skipped: summaryOf(root, result, undefined).skipped };
}
