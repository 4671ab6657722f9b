// Walks a folder and indexes every file in it, a few at a time. A file that cannot be indexed is
// reported with its reason and skipped; nothing stops the scan.
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { IndexError, type IndexErrorCode } from './index-error.js';
import { indexFile, type IndexedFile } from './index-file.js';

export interface SkippedFile {
  path: string;
  code: IndexErrorCode;
  reason: string;
}

export interface ScanResult {
  files: IndexedFile[];
  skipped: SkippedFile[];
}

export interface ScanOptions {
  /** Files indexed at once. */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Every regular file below `root`, depth first, in name order; the index folder and dot-folders are left out. */
export async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const path = join(dir, e.name);
      if (e.isDirectory()) await walk(path);
      else if (e.isFile()) out.push(path);
    }
  };
  await walk(root);
  return out;
}

export async function scanFolder(root: string, options: ScanOptions = {}): Promise<ScanResult> {
  const paths = await listFiles(root);
  const files: IndexedFile[] = [];
  const skipped: SkippedFile[] = [];
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < paths.length) {
      const path = paths[next++]!;
      try {
        files.push(await indexFile(path));
      } catch (e) {
        const error = e instanceof IndexError ? e : new IndexError('CORRUPT', String((e as Error)?.message ?? e));
        skipped.push({ path: relative(root, path), code: error.code, reason: error.message });
      }
      options.onProgress?.(++done, paths.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 8) }, worker));
  // Keep results in path order whatever order the reads finished in.
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  skipped.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { files, skipped };
}
