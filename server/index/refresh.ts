// Brings the index up to date with the folder: files whose size and mtime match their saved
// entry are kept without being opened; new and changed files are parsed (in batches, each saved
// as it completes, so an interrupted run keeps what it finished); entries of vanished files go.
import { readdirSync, realpathSync, statSync, type Dirent } from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { CatalogueIndex, FileStamp, InstanceRecord, SkippedRecord } from '../../shared/index-format.js';
import { catalogueIndexOf, recordOf } from './catalogue.js';
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

const same = (a: FileStamp, b: FileStamp) => a.size === b.size && a.mtimeMs === b.mtimeMs;

/**
 * Refreshes `previous` (the saved catalogue, absolute paths) against the folder and saves the
 * result through `store` (or keeps it in memory when `store` is undefined).
 */
export async function refreshIndex(
  root: string, previous: CatalogueIndex | undefined, parser: Parser, store: IndexStore | undefined, options: RefreshOptions = {},
): Promise<RefreshResult> {
  const t0 = performance.now();
  const { stamps, refused } = await statFiles(root, store?.dir, options.followSymlinksOutside);
  const before = new Map<string, InstanceRecord | SkippedRecord>();
  for (const r of previous?.instances ?? []) before.set(r.file.path, r);
  for (const r of previous?.skipped ?? []) if (r.code !== 'OUTSIDE_ROOT') before.set(r.file.path, r);

  const keptInstances = new Map<string, InstanceRecord>();
  const keptSkipped = new Map<string, SkippedRecord>();
  const toParse: FileStamp[] = [];
  for (const s of stamps) {
    const old = before.get(s.path);
    if (old && same(old.file, s)) {
      if ('sopInstanceUid' in old) keptInstances.set(s.path, old);
      else keptSkipped.set(s.path, old);
    } else {
      toParse.push(s);
    }
  }
  const changedSeries = new Set<string>();
  for (const r of previous?.instances ?? []) if (!keptInstances.has(r.file.path)) changedSeries.add(r.seriesInstanceUid);
  const present = new Set(stamps.map((s) => s.path));
  const removed = [...before.keys()].filter((p) => !present.has(p)).length;
  const keptBySeries = new Map<string, InstanceRecord[]>();
  for (const r of keptInstances.values()) {
    const list = keptBySeries.get(r.seriesInstanceUid);
    if (list) list.push(r);
    else keptBySeries.set(r.seriesInstanceUid, [r]);
  }

  // Facts of studies and series from the previous index; parsed files add theirs.
  const studies = new Map((previous?.studies ?? []).map((s) => [s.studyInstanceUid, s]));
  const series = new Map((previous?.series ?? []).map((s) => [s.seriesInstanceUid, s]));
  const parsedFiles: IndexedFile[] = [];
  const current = (): CatalogueIndex => {
    const fresh = catalogueIndexOf(parsedFiles);
    for (const s of fresh.studies) studies.set(s.studyInstanceUid, s);
    for (const s of fresh.series) series.set(s.seriesInstanceUid, s);
    const instances = [...keptInstances.values(), ...fresh.instances];
    const live = new Set(instances.map((r) => r.seriesInstanceUid));
    const liveSeries = [...series.values()].filter((s) => live.has(s.seriesInstanceUid));
    const liveStudies = new Set(liveSeries.map((s) => s.studyInstanceUid));
    return {
      studies: [...studies.values()].filter((s) => liveStudies.has(s.studyInstanceUid)),
      series: liveSeries,
      instances,
      skipped: [...keptSkipped.values(), ...refused].sort((a, b) => (a.file.path < b.file.path ? -1 : a.file.path > b.file.path ? 1 : 0)),
    };
  };

  /** Saves the series touched since the last save, then the catalogue. */
  const dirty = new Set<string>(changedSeries);
  /** Entries of a series' unchanged files, from its current file (rebuilt if untrusted); read once a refresh. */
  const keptCache = new Map<string, Promise<IndexedFile[]>>();
  const keptEntries = (uid: string): Promise<IndexedFile[]> => {
    let entries = keptCache.get(uid);
    if (!entries) {
      const records = keptBySeries.get(uid) ?? [];
      entries = records.length && store
        ? store.loadSeries(uid, records).then((l) => l.files.filter((f) => keptInstances.has(f.path)))
        : Promise.resolve([]);
      keptCache.set(uid, entries);
    }
    return entries;
  };
  const save = async (): Promise<void> => {
    if (!store) return;
    // Results go on arriving while this writes: what arrives now is saved next time.
    const uids = [...dirty];
    dirty.clear();
    for (const uid of uids) {
      const kept = await keptEntries(uid);
      const fresh = freshBySeries.get(uid) ?? [];
      await store.writeSeries(uid, [...kept, ...fresh]);
    }
    await store.writeCatalogue(current());
  };
  const freshBySeries = new Map<string, IndexedFile[]>();
  const addFresh = (file: IndexedFile): void => {
    const list = freshBySeries.get(file.series.seriesInstanceUid);
    if (list) list.push(file);
    else freshBySeries.set(file.series.seriesInstanceUid, [file]);
  };

  // A steady stream of files to the parser (at most `window` waiting), the index saved every
  // `saveEveryMs` while the parsing goes on, and once at the end.
  const window = Math.max(1, options.batchFiles ?? 1024);
  const saveEveryMs = options.saveEveryMs ?? 2000;
  let lastSave = performance.now();
  let saving: Promise<void> | undefined;
  let done = stamps.length - toParse.length;
  let outstanding = 0;
  let wake: (() => void) | undefined;
  options.onProgress?.({ done, total: stamps.length, parsed: 0, toParse: toParse.length });
  const here = toParse.length < 64; // a few files are not worth starting threads for
  const one = async (s: FileStamp): Promise<void> => {
    try {
      const file = await parser.parse(s.path, here);
      parsedFiles.push(file);
      addFresh(file);
      dirty.add(file.series.seriesInstanceUid);
      changedSeries.add(file.series.seriesInstanceUid);
    } catch (e) {
      const error = e instanceof IndexError ? e : new IndexError('CORRUPT', String((e as Error)?.message ?? e));
      keptSkipped.set(s.path, { file: s, code: error.code, reason: error.message });
    }
    done++;
    options.onProgress?.({ done, total: stamps.length, parsed: parsedFiles.length, toParse: toParse.length });
    checkpoint();
  };
  /** Saves when it is time, and again after a save if results arrived meanwhile and it is time again. */
  const checkpoint = (): void => {
    if (saving || performance.now() - lastSave < saveEveryMs) return;
    saving = save().finally(() => {
      saving = undefined;
      lastSave = performance.now();
      if (dirty.size) checkpoint();
    });
  };
  const running: Promise<void>[] = [];
  for (const s of toParse) {
    if (outstanding >= window) await new Promise<void>((r) => { wake = r; });
    outstanding++;
    running.push(one(s).finally(() => { outstanding--; const w = wake; wake = undefined; w?.(); }));
  }
  await Promise.all(running);
  await saving;
  // Keep results in path order whatever order the parses finished in.
  parsedFiles.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  if (toParse.length) await save();
  if (toParse.length === 0 && (dirty.size || !previous || removed)) await save();
  const index = current();
  return {
    index, files: stamps.length, parsed: parsedFiles.length, reused: keptInstances.size, removed, changedSeries, parsedFiles,
    ms: performance.now() - t0,
  };
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
