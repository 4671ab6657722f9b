// Brings the index up to date with the folder: files whose size and mtime match their saved
// entry are kept without being opened; new and changed files are parsed (in batches, each saved
// as it completes, so an interrupted run keeps what it finished); entries of vanished files go.
import { readdirSync, realpathSync, statSync, type Dirent } from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { CatalogueIndex, FileStamp, InstanceRecord, SkippedRecord } from '../../shared/index-format.js';
import { recordOf } from './catalogue.js';
import { IndexDraft } from './index-draft.js';
import { IndexError, type IndexErrorCode } from './index-error.js';
import { inside } from './path-inside.js';
import type { IndexedFile } from './index-file.js';
import type { IndexStore } from './index-store.js';

/** What parses files for a refresh (a ParsePool). */
export interface Parser { parse(path: string, here?: boolean): Promise<IndexedFile> }

export interface RefreshProgress {
  /** Files parsed or found unchanged so far, of all files. */
  done: number;
  total: number;
  parsed: number;
  /** Files to parse in this run. */
  toParse: number;
}

export interface RefreshOptions {
  onProgress?: (p: RefreshProgress) => void;
  /** Files parsed at a time; the index is saved after a batch once `saveEveryMs` have passed. */
  batchFiles?: number;
  /** At most this long between two saves of the index (what an interruption can lose). Default 2000. */
  saveEveryMs?: number;
  /** Follow symbolic links leading outside the root (refused by default). */
  followSymlinksOutside?: boolean;
  /** The files to index, when not a folder's (an object store's listing). */
  list?: () => Promise<FolderListing>;
}

export interface RefreshResult {
  index: CatalogueIndex;
  /** Files found, and how many of them were parsed, reused from the index, or are new/changed. */
  files: number;
  parsed: number;
  reused: number;
  removed: number;
  /** Series whose files changed in this run (entries added, replaced or removed). */
  changedSeries: Set<string>;
  /** Every indexed file parsed in this run. */
  parsedFiles: IndexedFile[];
  ms: number;
}

/** Every regular file below `root` with its size and mtime, in path order; dot-folders (the index) are left out. */
/** What a walk found: the files to index, and symbolic links refused because they lead outside. */
export interface FolderListing { stamps: FileStamp[]; refused: SkippedRecord[] }

/**
 * Every regular file below `root` with its size and mtime, in path order; dot-folders (the index)
 * are left out. Symbolic links are followed when they lead inside `root` (the real path of the
 * root); a link leading outside is refused and reported, unless `followOutside`.
 */
export async function statFiles(root: string, exclude?: string, followOutside = false): Promise<FolderListing> {
  // Blocking calls, one folder at a time with a yield between folders: several times faster than
  // the thread pool's round trips for thousands of small stats, and serving goes on in between.
  const out: FileStamp[] = [];
  const refused: SkippedRecord[] = [];
  let realRoot: string;
  try {
    realRoot = realpathSync(root);
  } catch {
    return { stamps: out, refused };
  }
  const visited = new Set<string>([realRoot]); // real folders walked: link loops end here
  const walk = async (dir: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const folders: string[] = [];
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const path = join(dir, e.name);
      if (path === exclude) continue;
      let isFile = e.isFile();
      let isDirectory = e.isDirectory();
      if (e.isSymbolicLink()) {
        let target: string;
        try {
          target = realpathSync(path);
        } catch {
          continue; // a dangling link: nothing to serve
        }
        const s = statSync(target, { throwIfNoEntry: false });
        if (!s) continue;
        if (!followOutside && !inside(realRoot, target)) {
          refused.push({ file: { path, size: s.size, mtimeMs: s.mtimeMs }, code: 'OUTSIDE_ROOT', reason: `symbolic link to ${target}, outside the served folder` });
          continue;
        }
        if (s.isDirectory()) {
          if (visited.has(target)) continue;
          visited.add(target);
        }
        isFile = s.isFile();
        isDirectory = s.isDirectory();
      }
      if (isDirectory) folders.push(path);
      else if (isFile) {
        const s = statSync(path, { throwIfNoEntry: false });
        if (s) out.push({ path, size: s.size, mtimeMs: s.mtimeMs });
      }
    }
    for (const folder of folders) {
      await new Promise((r) => setImmediate(r));
      await walk(folder);
    }
  };
  await walk(root);
  out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { stamps: out, refused };
}

/**
 * Refreshes `previous` (the saved catalogue, absolute paths) against the folder and saves the
 * result through `store` (or keeps it in memory when `store` is undefined).
 */
export async function refreshIndex(
  root: string, previous: CatalogueIndex | undefined, parser: Parser, store: IndexStore | undefined, options: RefreshOptions = {},
): Promise<RefreshResult> {
  const t0 = performance.now();
  const { stamps, refused } = options.list ? await options.list() : await statFiles(root, store?.dir, options.followSymlinksOutside);
  const draft = new IndexDraft(stamps, previous, refused, store);
  const { toParse } = draft;

  // A steady stream of files to the parser, the index saved every `saveEveryMs` while the
  // parsing goes on, and once at the end.
  const saveEveryMs = options.saveEveryMs ?? 2000;
  let lastSave = performance.now();
  let saving: Promise<void> | undefined;
  let done = stamps.length - toParse.length;
  const progress = () => options.onProgress?.({ done, total: stamps.length, parsed: draft.parsedFiles.length, toParse: toParse.length });
  /** Saves when it is time, and again after a save if results arrived meanwhile and it is time again. */
  const checkpoint = (): void => {
    if (saving || performance.now() - lastSave < saveEveryMs) return;
    saving = draft.save().finally(() => {
      saving = undefined;
      lastSave = performance.now();
      if (draft.unsaved) checkpoint();
    });
  };
  progress();
  const here = toParse.length < 64; // a few files are not worth starting threads for
  await forEachBounded(toParse, Math.max(1, options.batchFiles ?? 1024), async (s) => {
    try {
      draft.addParsed(await parser.parse(s.path, here));
    } catch (e) {
      draft.addSkipped(s, e instanceof IndexError ? e : new IndexError('CORRUPT', String((e as Error)?.message ?? e)));
    }
    done++;
    progress();
    checkpoint();
  });
  await saving;
  draft.sortParsed();
  if (toParse.length || draft.unsaved || !previous || draft.removed) await draft.save();
  return {
    index: draft.current(), files: stamps.length, parsed: draft.parsedFiles.length, reused: draft.keptInstances.size, removed: draft.removed,
    changedSeries: draft.changedSeries, parsedFiles: draft.parsedFiles, ms: performance.now() - t0,
  };
}

/** Runs `each` on every item, at most `window` at a time, in order of the list. */
async function forEachBounded<T>(items: T[], window: number, each: (item: T) => Promise<void>): Promise<void> {
  let outstanding = 0;
  let wake: (() => void) | undefined;
  const running: Promise<void>[] = [];
  for (const item of items) {
    if (outstanding >= window) await new Promise<void>((r) => { wake = r; });
    outstanding++;
    running.push(each(item).finally(() => { outstanding--; const w = wake; wake = undefined; w?.(); }));
  }
  await Promise.all(running);
}

/** A file not served, for reports: its path relative to the root, and why. */
export interface SkippedFile {
  path: string;
  code: IndexErrorCode;
  reason: string;
}

/** What a refresh found, for reports (paths relative to the root). */
export interface IndexSummary {
  /** Files under the folder, and of them: parsed in that refresh, reused unchanged from the index. */
  files: number;
  parsed: number;
  reused: number;
  removed: number;
  skipped: SkippedFile[];
  ms: number;
  /** Where the index is saved; undefined: in memory only. */
  indexDir: string | undefined;
}

export function summaryOf(root: string, r: RefreshResult, indexDir: string | undefined): IndexSummary {
  return {
    files: r.files, parsed: r.parsed, reused: r.reused, removed: r.removed, ms: r.ms, indexDir,
    skipped: r.index.skipped.map((k) => ({ path: relativePath(root, k.file.path), code: k.code as IndexErrorCode, reason: k.reason })),
  };
}

/** A path relative to the root, '/'-separated (for reports). */
export function relativePath(root: string, path: string): string {
  return relative(root, path).split(sep).join('/');
}

export { recordOf };
