// Brings the index up to date with the folder: files whose size and mtime match their saved
// entry are kept without being opened; new and changed files are parsed (in batches, each saved
// as it completes, so an interrupted run keeps what it finished); entries of vanished files go.
import { readdirSync, readlinkSync, realpathSync, statSync, type Dirent, type Stats } from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { CatalogueIndex, FileStamp, InstanceRecord, SkippedRecord } from '../../shared/index-format.js';
import { recordOf } from './catalogue.js';
import { IndexDraft } from './index-draft.js';
import { byPath } from './path-order.js';
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
  /** A folder left out of the walk (an index folder inside the root); default: the store's. */
  exclude?: string;
  /** The files to index, when not a folder's (an object store's listing). */
  list?: () => Promise<FolderListing>;
}

export interface RefreshResult {
  index: CatalogueIndex;
  /**
   * Entries found: the files to index and those the walk left out (each reported, as are files that
   * could not be indexed), so that files = instances + skipped; and how many were parsed, reused
   * from the index, or are new/changed.
   */
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

/**
 * What a walk found: the files to index, and the entries it left out, each with its reason (links
 * leading outside, FIFOs and devices, dangling links, link loops, folders it could not read).
 */
export interface FolderListing { stamps: FileStamp[]; refused: SkippedRecord[] }

type Code = (e: unknown) => string | undefined;
const errno: Code = (e) => (e as NodeJS.ErrnoException)?.code;

/** What a non-regular, non-folder entry is, for reports. */
function kindOf(e: Pick<Stats, 'isFIFO' | 'isSocket' | 'isBlockDevice' | 'isCharacterDevice'>): string {
  return e.isFIFO() ? 'a FIFO (named pipe)' : e.isSocket() ? 'a socket' : e.isBlockDevice() ? 'a block device' : e.isCharacterDevice() ? 'a character device' : 'neither a file nor a folder';
}

/**
 * Every regular file below `root` with its size and mtime, in path order; dot-files and
 * dot-folders (the index) are left out silently, and so is `exclude` (an index folder inside the
 * root). Symbolic links are followed when they lead inside `root` (the real path of the root); a
 * link leading outside is refused, unless `followOutside`. Everything else not indexed is left out
 * with its reason: FIFOs, sockets and devices (stat'ed, never opened: a FIFO would block), dangling
 * links, link loops, folders and entries that cannot be read. An entry that vanishes during the
 * walk is simply gone.
 */
export async function statFiles(root: string, exclude?: string, followOutside = false): Promise<FolderListing> {
  // Blocking calls, one folder at a time with a yield between folders: several times faster than
  // the thread pool's round trips for thousands of small stats, and serving goes on in between.
  const out: FileStamp[] = [];
  const refused: SkippedRecord[] = [];
  /** Left out: size and date 0 (not a file's), so the path is looked at again by the next walk. */
  const leaveOut = (path: string, code: IndexErrorCode, reason: string) => refused.push({ file: { path, size: 0, mtimeMs: 0 }, code, reason });
  const unreadable = (path: string, what: string, e: unknown) =>
    leaveOut(path, 'UNREADABLE', `${what} cannot be read (${(e as Error).message.replace(/, \w+ '.*'$/s, '')})${what === 'folder' ? ': none of its files are indexed' : ''}`);
  let realRoot: string;
  try {
    realRoot = realpathSync(root);
  } catch {
    return { stamps: out, refused };
  }
  const visited = new Set<string>([realRoot]); // real folders walked through links: each once
  const walking = new Set<string>(); // real paths of the folders being walked: a link to one is a loop
  /** Walks `dir`, whose real path is `real`. */
  const walk = async (dir: string, real: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch (e) {
      if (errno(e) !== 'ENOENT') unreadable(dir, 'folder', e);
      return;
    }
    walking.add(real);
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const folders: Array<[path: string, real: string]> = [];
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const path = join(dir, e.name);
      if (path === exclude) continue;
      if (e.isDirectory()) {
        folders.push([path, join(real, e.name)]);
        continue;
      }
      if (!e.isFile() && !e.isSymbolicLink()) {
        leaveOut(path, 'NOT_A_FILE', `${kindOf(e)}, not a regular file`);
        continue;
      }
      try {
        const found = e.isFile() ? { s: statSync(path), real: path } : followLink(path);
        if (found?.s.isFile()) out.push({ path, size: found.s.size, mtimeMs: found.s.mtimeMs });
        else if (found) folders.push([path, found.real]);
      } catch (err) {
        if (errno(err) !== 'ENOENT') unreadable(path, e.isSymbolicLink() ? 'symbolic link' : 'file', err);
      }
    }
    for (const [folder, realFolder] of folders) {
      await new Promise((r) => setImmediate(r));
      await walk(folder, realFolder);
    }
    walking.delete(real);
  };
  /** A link's target (its stats and real path) when it is to be walked or indexed; undefined when left out (and reported). */
  const followLink = (path: string): { s: Stats; real: string } | undefined => {
    let target: string;
    try {
      target = realpathSync(path);
    } catch (e) {
      const code = errno(e);
      if (code === 'ELOOP') leaveOut(path, 'LINK_LOOP', `symbolic link to ${readlinkSync(path)}: a loop of links that never reaches a file`);
      else if (code === 'ENOENT' || code === 'ENOTDIR') leaveOut(path, 'DANGLING_LINK', `symbolic link to ${readlinkSync(path)}, which does not exist`);
      else throw e;
      return undefined;
    }
    const s = statSync(target);
    if (!followOutside && !inside(realRoot, target)) {
      refused.push({ file: { path, size: s.size, mtimeMs: s.mtimeMs }, code: 'OUTSIDE_ROOT', reason: `symbolic link to ${target}, outside the served folder` });
      return undefined;
    }
    if (s.isDirectory()) {
      if (walking.has(target)) {
        leaveOut(path, 'LINK_LOOP', `symbolic link to ${target}, a folder that contains it: a loop`);
        return undefined;
      }
      if (visited.has(target)) {
        leaveOut(path, 'LINK_LOOP', `symbolic link to ${target}, a folder walked already through another link: its files are indexed once`);
        return undefined;
      }
      visited.add(target);
    } else if (!s.isFile()) {
      leaveOut(path, 'NOT_A_FILE', `symbolic link to ${kindOf(s)}, not a regular file`);
      return undefined;
    }
    return { s, real: target };
  };
  await walk(root, realRoot);
  out.sort(byPath);
  refused.sort((a, b) => byPath(a.file, b.file));
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
  const { stamps, refused } = options.list ? await options.list() : await statFiles(root, options.exclude ?? store?.dir, options.followSymlinksOutside);
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
    index: draft.current(), files: stamps.length + refused.length, parsed: draft.parsedFiles.length, reused: draft.keptInstances.size, removed: draft.removed,
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
  /** Entries under the folder (files, and those left out with a reason), and of them: parsed in that refresh, reused unchanged from the index. */
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

/** A path relative to the root, '/'-separated (for reports); the root itself is `.`. */
export function relativePath(root: string, path: string): string {
  return relative(root, path).split(sep).join('/') || '.';
}

export { recordOf };
