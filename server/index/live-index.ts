// The index of a served folder, kept current: loads the saved index (or builds it), then follows
// the folder (watcher and rescans), one refresh at a time, replacing the catalogue when files
// changed. Tells its listener what changed; knows nothing of files opened or clients.
import { relative, sep } from 'node:path';
import { CodedError } from '../../shared/coded-error.js';
import type { CatalogueIndex, FileStamp } from '../../shared/index-format.js';
import type { Logger } from '../log.js';
import { Catalogue } from './catalogue.js';
import type { IndexedFile } from './index-file.js';
import type { S3Archive, S3ArchiveOptions } from '../archive/s3.js';
import { objectIndexing, type ObjectIndexing } from '../archive/object-indexing.js';
import { openIndexFolder, type IndexFolder } from './index-folder.js';
import { IndexLock } from './index-lock.js';
import { CATALOGUE_FILE, IndexStore, MemorySeriesSource } from './index-store.js';
import { ParsePool } from './parse-pool.js';
import { inside } from './path-inside.js';
import { refreshIndex, relativePath, summaryOf, type IndexSummary, type Parser, type RefreshOptions, type RefreshProgress, type RefreshResult } from './refresh.js';
import { watchFolder, type FolderWatcher } from './watch.js';

export interface LiveIndexOptions {
  root: string;
  /** Where the index is saved: a folder (a relative path from where the process runs) or an `s3://` prefix; false: in memory only. */
  indexDir?: string | false;
  /** How to reach the store of an `s3://` indexDir. */
  s3?: S3ArchiveOptions;
  indexCacheBytes: number;
  parseWorkers: number;
  followSymlinks: boolean;
  /** Follow the folder's changes; with `rescanMs` also rescan at that interval (0: never). */
  watch: boolean;
  rescanMs: number;
  /**
   * Never write the saved index: serve the one in `indexDir` (written by `dicomstream index` or
   * another server) and follow its new versions, checked every `indexPollMs`; the folder itself is
   * not scanned or watched.
   */
  readOnly?: boolean;
  indexPollMs?: number;
  /** How often an index that could not be saved is tried again. Default 10 s. */
  saveRetryMs?: number;
  /** The files are this store's objects (`root` is its s3:// URL): listed, not walked; rescanned, not watched. */
  archive?: S3Archive;
  log: Logger;
  onProgress?: (progress: RefreshProgress) => void;
}

/** What one refresh changed. */
export interface IndexChange {
  catalogue: Catalogue;
  /** Series whose files were added, replaced or removed; `removed` when the series is gone. */
  series: Array<{ seriesInstanceUid: string; removed: boolean }>;
  /** Files replaced or deleted: what was read of them before must not be served any more. */
  staleFiles: string[];
}

export class LiveIndex {
  private last!: RefreshResult;
  private current!: Catalogue;
  private summaryNow!: IndexSummary;
  private refreshing: Promise<void> | undefined;
  private again = false;
  private watcher: FolderWatcher | undefined;
  /** Without a saved index, parsed entries stay here. */
  private readonly inMemory = new Map<string, IndexedFile>();
  private readonly parser: ParsePool;
  private store: IndexStore | undefined;
  private indexDir: string | undefined;
  /** This server writes the saved index: no other process may meanwhile. */
  private lock: IndexLock | undefined;
  /** Why the index folder cannot be written, when it cannot. */
  private readOnlyReason: Error | undefined;
  /** Read-only: polls the saved catalogue's version. */
  private pollTimer: NodeJS.Timeout | undefined;
  /** Read-only: the saved catalogue's version being served, and the newest one seen. */
  private catalogueVersion: string | undefined;
  private wantedVersion: string | undefined;
  /** Read-only: the last version that could not be loaded, and when. */
  private failed: { version: string | undefined; at: number } | undefined;
  private readonly objects: ObjectIndexing | undefined;
  private rescanTimer: NodeJS.Timeout | undefined;
  /** Told after each refresh that changed something. */
  onChange: (change: IndexChange) => void = () => {};

  private constructor(private readonly options: LiveIndexOptions) {
    this.parser = new ParsePool(options.parseWorkers);
    this.objects = options.archive ? objectIndexing(options.archive) : undefined;
  }

  /** What parses files: the parser threads, or for an archive the object parser. */
  private get fileParser(): Parser {
    return this.objects?.parser ?? this.parser;
  }

  /** What a refresh indexes: the folder, or the archive's listing. */
  private get refreshOptions(): RefreshOptions {
    return this.objects ? { list: () => this.objects!.list() } : { followSymlinksOutside: this.options.followSymlinks };
  }

  /** Reads the saved index, brings it up to date with the folder, and starts following it. */
  static async open(options: LiveIndexOptions): Promise<LiveIndex> {
    const live = new LiveIndex(options);
    await live.load();
    return live;
  }

  get catalogue(): Catalogue { return this.current; }
  get summary(): IndexSummary { return this.summaryNow; }
  /** DICOM files parsed since start (a restart on an unchanged folder parses none). */
  get parses(): number { return this.objects?.parsed ?? this.parser.parsed; }
  /** What the index holds, for metrics. */
  counts(): { studies: number; series: number; instances: number; frames: number; files: number; skipped: number } {
    const c = this.current;
    return { studies: c.studyCount, series: c.seriesCount, instances: c.instanceCount, frames: c.frameCount, files: this.summaryNow.files, skipped: this.summaryNow.skipped.length };
  }

  /** Refreshes now (the watcher does it on its own); resolves when the catalogue is current. */
  async refreshNow(): Promise<IndexSummary> {
    // A refresh already running may have listed the folder before the caller's change.
    this.again = this.again || this.refreshing !== undefined;
    await this.refresh();
    return this.summaryNow;
  }

  async close(): Promise<void> {
    this.watcher?.close();
    clearInterval(this.pollTimer);
    clearInterval(this.rescanTimer);
    await this.refreshing;
    await this.parser.close();
    this.store?.close();
    if (this.store && !this.store.readOnly && !(await this.store.flush().catch(() => false))) {
      this.options.log.warn('index not saved: what changed since the last save is indexed again at the next start', { dir: this.indexDir, files: this.store.unsavedFiles });
    }
    await this.lock?.release().catch((e: unknown) => this.options.log.warn('index lock not released', { error: (e as Error).message }));
    this.store?.folder.close();
  }

  private async load(): Promise<void> {
    const { root, log } = this.options;
    if (this.options.readOnly) return this.loadSaved();
    const folder = openIndexFolder(root, this.options.indexDir, this.options.archive, this.options.s3 ?? {});
    if (folder) {
      this.indexDir = folder.location;
      this.store = this.storeIn(folder);
      // An index folder that cannot be written (a read-only medium, a full disk, no permission):
      // its saved index, if any, is used as it is, and what changes is indexed in memory.
      try {
        await folder.probe();
        this.lock = await IndexLock.acquire(folder, 'serve');
      } catch (e) {
        if ((e as { code?: string }).code === 'INDEX_LOCKED') {
          folder.close();
          throw e;
        }
        this.store.readOnly = true;
        this.readOnlyReason = e as Error;
      }
    }
    // Temp files of a writer killed mid-write are garbage now that this one holds the lock.
    const staleTemps = this.lock && this.store?.removeStaleTemps().catch((e: unknown) => {
      log.warn('stale temporary index files not removed', { dir: this.indexDir, error: (e as Error).message });
      return 0;
    });
    try {
      this.last = await refreshIndex(root, await this.store?.readCatalogue(), this.fileParser, this.store, {
        ...this.refreshOptions, onProgress: this.options.onProgress,
      });
    } catch (e) {
      await staleTemps;
      await this.lock?.release();
      this.store?.close();
      this.store?.folder.close();
      throw e;
    } finally {
      await this.parser.idle();
    }
    if (this.readOnlyReason) {
      const saved = this.last.reused > 0 || this.last.removed > 0;
      log.warn(`index folder cannot be written: ${saved ? 'its saved index is used as it is, and new or changed files are indexed in memory' : 'the index is kept in memory only'}` +
        (this.options.indexDir ? '' : ' (give --index-dir a writable folder to keep it)'), { dir: this.indexDir, error: this.readOnlyReason.message });
    }
    const removedTemps = await staleTemps;
    if (removedTemps) log.info('removed temporary index files left by an interrupted writer', { dir: this.indexDir, files: removedTemps });
    this.absorb(this.last);
    this.current = this.catalogueOf(this.last.index);
    this.summaryNow = summaryOf(root, this.last, this.indexDir);
    if (this.options.archive) {
      // A store sends no change events: its listing is read again every rescan interval.
      if (this.options.watch && this.options.rescanMs > 0) {
        this.rescanTimer = setInterval(() => void this.refresh(), this.options.rescanMs);
        this.rescanTimer.unref();
      }
    } else if (this.options.watch) {
      // The index's own saves (an --index-dir inside the folder) are not changes to the folder.
      const indexInside = this.indexDir && inside(root, this.indexDir) ? [relative(root, this.indexDir) + sep] : [];
      this.watcher = watchFolder(root, () => void this.refresh(), {
        rescanMs: this.options.rescanMs, ignore: indexInside,
        onError: (e) => log.warn('folder watch failed: rescanning periodically only', { error: e.message }),
      });
    }
  }

  private storeIn(folder: IndexFolder): IndexStore {
    const { log } = this.options;
    const store: IndexStore = new IndexStore(this.options.root, folder, (path) => this.fileParser.parse(path, true), {
      onProblem: (file, reason) => log.warn('index file not trusted: rebuilt from the DICOM files', { file, reason }),
      // A save that fails while serving (the disk filled up) must not hide new files: they are
      // served from memory, and the index saved once it can be.
      onSaving: (r) => {
        if (r.saved) log.info('index saved again', { dir: folder.location, files: r.files });
        else log.warn(`index cannot be saved: kept in memory and tried again every ${Math.round(store.retryMs / 1000)} s`, { dir: folder.location, error: r.error.message });
      },
      retryMs: this.options.saveRetryMs,
    });
    return store;
  }

  /** Read-only: the saved index as it is, nothing parsed; then its new versions as they appear. */
  private async loadSaved(): Promise<void> {
    const { root } = this.options;
    const folder = openIndexFolder(root, this.options.indexDir === false ? undefined : this.options.indexDir, this.options.archive, this.options.s3 ?? {})!;
    const dir = folder.location;
    this.indexDir = dir;
    this.store = this.storeIn(folder);
    this.store.readOnly = true;
    const t0 = performance.now();
    // Its version before it is read: a new one saved in between is then seen as new, not missed.
    this.catalogueVersion = await folder.version(CATALOGUE_FILE).catch(() => undefined);
    const index = await this.store.readCatalogue();
    if (!index) {
      folder.close();
      throw new CodedError('NO_SAVED_INDEX', `no saved index in ${dir} to serve read-only: run dicomstream index ${root} --index-dir ${dir} first`);
    }
    this.last = savedResult(index, performance.now() - t0, new Set(), 0);
    this.current = this.catalogueOf(index);
    this.summaryNow = summaryOf(root, this.last, dir);
    // Polled, not watched: shared folders (NFS, SMB) send no change events, and a bucket none at
    // all. A version is taken as seen only once it is loaded: one that fails to load is tried again.
    let polling = false;
    this.pollTimer = setInterval(() => {
      if (polling) return;
      polling = true;
      folder.version(CATALOGUE_FILE).then((now) => {
        const failedLately = this.failed !== undefined && now === this.failed.version && performance.now() - this.failed.at < FAILED_RELOAD_RETRY_MS;
        if (now !== undefined && now !== this.catalogueVersion && !failedLately) {
          this.wantedVersion = now;
          return this.refresh();
        }
        return undefined;
      }, (e: unknown) => this.options.log.warn('saved index not reachable', { dir, error: (e as Error).message })).finally(() => { polling = false; });
    }, this.options.indexPollMs ?? 1000);
    this.pollTimer.unref();
  }

  /** Read-only: the saved catalogue's new version, and what changed since the last one; undefined: none readable. */
  private async reloadSaved(): Promise<RefreshResult | undefined> {
    const t0 = performance.now();
    // A catalogue not trusted (reported) or removed: the last one goes on being served.
    const index = await this.store!.readCatalogue();
    if (!index) return undefined;
    const { changed, removed } = changedSeries(this.last.index, index);
    return savedResult(index, performance.now() - t0, changed, removed);
  }

  private catalogueOf(index: CatalogueIndex): Catalogue {
    return new Catalogue(index, this.store ?? new MemorySeriesSource(this.inMemory.values()), { cacheBytes: this.options.indexCacheBytes });
  }

  private absorb(r: RefreshResult): void {
    if (this.store) return;
    const live = new Set(r.index.instances.map((i) => i.file.path));
    for (const path of this.inMemory.keys()) if (!live.has(path)) this.inMemory.delete(path);
    for (const f of r.parsedFiles) this.inMemory.set(f.path, f);
  }

  /** One refresh at a time; a change seen during one runs another after it. */
  private refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        await this.refreshOnce().catch((e: unknown) => this.options.log.error('index refresh failed', { error: (e as Error).message }));
      } while (this.again);
    })().finally(() => { this.refreshing = undefined; });
    return this.refreshing;
  }

  private async refreshOnce(): Promise<void> {
    const { root } = this.options;
    const version = this.wantedVersion;
    const r = this.options.readOnly
      ? await this.reloadSaved()
      : await refreshIndex(root, this.last.index, this.fileParser, this.store, this.refreshOptions)
        .finally(() => this.parser.idle());
    if (!r) {
      if (this.options.readOnly) this.failed = { version, at: performance.now() };
      return;
    }
    if (this.options.readOnly) this.catalogueVersion = version;
    const before = this.current;
    this.last = r;
    this.summaryNow = summaryOf(root, r, this.indexDir);
    if (r.parsed === 0 && r.removed === 0 && r.changedSeries.size === 0) return;
    this.absorb(r);
    const next = this.catalogueOf(r.index);
    const live = new Set(r.index.instances.map((i) => i.file.path));
    const kept = new Set<string>();
    for (const i of r.index.instances) kept.add(stampKey(i.file));
    const staleFiles: string[] = [];
    for (const old of before.allRecords()) {
      if (!kept.has(stampKey(old.file))) staleFiles.push(old.file.path);
      if (!live.has(old.file.path) && !next.record(old.sopInstanceUid)) next.markGone(old.sopInstanceUid, relativePath(root, old.file.path));
    }
    next.adopt(before, r.changedSeries);
    this.current = next;
    this.options.log.info('index refreshed', { parsed: r.parsed, removed: r.removed, series: r.changedSeries.size, ms: Math.round(r.ms) });
    const series = [...r.changedSeries].map((seriesInstanceUid) => ({ seriesInstanceUid, removed: !next.hasSeries(seriesInstanceUid) }));
    this.onChange({ catalogue: next, series, staleFiles });
  }
}

/** A saved catalogue that could not be loaded is tried again after this long (not at every poll). */
const FAILED_RELOAD_RETRY_MS = 10_000;

/** A file's version as one string: path, size, date, and an object's ETag. */
function stampKey(f: FileStamp): string {
  return `${f.path}\0${f.size}\0${f.mtimeMs}\0${f.etag ?? ''}`;
}

/** A refresh that read a saved catalogue (parsing nothing). */
function savedResult(index: CatalogueIndex, ms: number, changed: Set<string>, removed: number): RefreshResult {
  return { index, files: index.instances.length + index.skipped.length, parsed: 0, reused: index.instances.length, removed, changedSeries: changed, parsedFiles: [], ms };
}

/** Series with an instance added, removed or of another file version between two catalogues; and instances removed. */
function changedSeries(before: CatalogueIndex, after: CatalogueIndex): { changed: Set<string>; removed: number } {
  const version = (r: CatalogueIndex['instances'][number]) => `${r.seriesInstanceUid}\0${stampKey(r.file)}`;
  const old = new Map(before.instances.map((r) => [r.sopInstanceUid, r]));
  const changed = new Set<string>();
  for (const r of after.instances) {
    const was = old.get(r.sopInstanceUid);
    old.delete(r.sopInstanceUid);
    if (!was || version(was) !== version(r)) {
      changed.add(r.seriesInstanceUid);
      if (was) changed.add(was.seriesInstanceUid);
    }
  }
  for (const gone of old.values()) changed.add(gone.seriesInstanceUid);
  return { changed, removed: old.size };
}

