// The saved parser index: `catalogue.dsix` (studies, series, instance records) and one
// `series/<xx>/<sha1>.dsix` per series (attributes and frame tables), so that opening a series
// reads only its own file; in an index folder on disk or in a bucket (index-folder.ts), each file
// replaced whole. A file that cannot be trusted is reported and rebuilt from the DICOM files.
import { createHash } from 'node:crypto';
import { relative, sep } from 'node:path';
import {
  decodeCatalogueIndex, decodeSeriesIndex, encodeCatalogueIndex, encodeSeriesIndex,
  IndexFileError, type CatalogueIndex, type FileEntry, type InstanceRecord, type SeriesIndex,
} from '../../shared/index-format.js';
import { LocalIndexFolder, type IndexFolder } from './index-folder.js';
import type { IndexedFile } from './index-file.js';
import { inside } from './path-inside.js';

export { DEFAULT_INDEX_DIR } from './index-folder.js';

/** The catalogue's file name in the index folder: a new version of it is a new version of the index. */
export const CATALOGUE_FILE = 'catalogue.dsix';

/** Index entries of one series as read back, with the bytes they took on disk (for cache sizing). */
export interface LoadedSeries { files: IndexedFile[]; bytes: number }

/** Where a series' entries come from: the disk index, or memory when nothing is persisted. */
export interface SeriesSource {
  loadSeries(seriesInstanceUid: string, records: InstanceRecord[]): Promise<LoadedSeries>;
}

/** Told when an index file was not trusted and rebuilt. */
export type IndexProblem = (file: string, reason: string) => void;

/** Told when the index could not be saved (kept in memory meanwhile), and when it is saved again. */
export type SavingReport = (report: { saved: false; error: Error; unsaved: number } | { saved: true; files: number }) => void;

export interface IndexStoreOptions {
  /** Files not trusted and rebuilt. */
  onProblem?: IndexProblem;
  /**
   * A save that fails (a full disk, a read-only medium, a store down) keeps the files in memory
   * and tries again every `retryMs`, telling this; without it, the failure is thrown.
   */
  onSaving?: SavingReport;
  retryMs?: number;
}

/** How often files kept in memory after a failed save are tried again. */
const SAVE_RETRY_MS = 10_000;

export class IndexStore implements SeriesSource {
  /** Series files rebuilt from the DICOM files because they could not be trusted. */
  rebuilt = 0;
  /**
   * Never write: the index is another process's (a replica's --read-only-index), or its folder
   * cannot be written; what would be written is kept in memory instead.
   */
  readOnly = false;

  /** Where the files are. */
  readonly folder: IndexFolder;
  private readonly options: IndexStoreOptions;
  private readonly onProblem: IndexProblem;
  /** Files written in memory only, by name (read before the folder's). */
  private readonly unsaved = new Map<string, Uint8Array>();
  private retryTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    readonly root: string,
    /** The index folder, or its path on disk. */
    folder: IndexFolder | string,
    /** Parses one DICOM file (rebuilding a series file that cannot be trusted). */
    private readonly parse: (path: string) => Promise<IndexedFile>,
    options: IndexStoreOptions | IndexProblem = {},
  ) {
    this.folder = typeof folder === 'string' ? new LocalIndexFolder(folder) : folder;
    this.options = typeof options === 'function' ? { onProblem: options } : options;
    this.onProblem = this.options.onProblem ?? (() => undefined);
  }

  /** How often files held in memory after a failed save are tried again. */
  get retryMs(): number { return this.options.retryMs ?? SAVE_RETRY_MS; }

  /** Index files held in memory because they could not be written (or are never written: readOnly). */
  get unsavedFiles(): number { return this.unsaved.size; }

  /** The folder's path or URL, for messages. */
  get dir(): string { return this.folder.location; }
  get cataloguePath(): string { return this.folder.pathOf(CATALOGUE_FILE); }
  seriesPath(seriesInstanceUid: string): string { return this.folder.pathOf(seriesFile(seriesInstanceUid)); }

  /**
   * Removes the temporary files a killed writer left (`catalogue.dsix.<pid>.<n>.tmp`, the same
   * in `series/xx/`); returns how many. Only for the holder of the index's lock.
   */
  async removeStaleTemps(): Promise<number> {
    if (this.readOnly || !this.folder.removeStaleTemps) return 0;
    return this.folder.removeStaleTemps(['', ...SERIES_FOLDERS], /\.dsix$/);
  }

  /** The saved catalogue with absolute paths, or undefined (none yet, or not trusted: reported). */
  async readCatalogue(): Promise<CatalogueIndex | undefined> {
    let bytes: Uint8Array | undefined;
    try {
      bytes = this.unsaved.get(CATALOGUE_FILE) ?? await this.folder.read(CATALOGUE_FILE);
    } catch (e) {
      this.onProblem(this.cataloguePath, (e as Error).message);
      return undefined;
    }
    if (!bytes) return undefined;
    try {
      const index = decodeCatalogueIndex(bytes);
      for (const r of index.instances) r.file.path = this.absolute(r.file.path);
      for (const s of index.skipped) s.file.path = this.absolute(s.file.path);
      return index;
    } catch (e) {
      this.onProblem(this.cataloguePath, (e as Error).message);
      return undefined;
    }
  }

  async writeCatalogue(index: CatalogueIndex): Promise<void> {
    const rel = <T extends { file: { path: string } }>(r: T): T => ({ ...r, file: { ...r.file, path: this.relative(r.file.path) } });
    await this.write(CATALOGUE_FILE, encodeCatalogueIndex({
      ...index, instances: index.instances.map(rel), skipped: index.skipped.map(rel),
    }));
  }

  /** The series file's entries (the one in memory, else `fromFolder` the saved one); throws if it is missing or cannot be trusted. */
  async readSeries(seriesInstanceUid: string, fromFolder = false): Promise<LoadedSeries> {
    const name = seriesFile(seriesInstanceUid);
    const bytes = (fromFolder ? undefined : this.unsaved.get(name)) ?? await this.folder.read(name);
    if (!bytes) throw Object.assign(new Error('missing'), { code: 'ENOENT' });
    const index = decodeSeriesIndex(bytes);
    return { files: index.files.map((e) => this.fromEntry(e, index)), bytes: bytes.length };
  }

  /** Writes a series file from its files' entries (all of one series); none: removes it. */
  async writeSeries(seriesInstanceUid: string, files: IndexedFile[]): Promise<number> {
    const name = seriesFile(seriesInstanceUid);
    if (files.length === 0) {
      this.unsaved.delete(name);
      if (!this.readOnly) await this.folder.remove(name).catch((e: unknown) => { if (!this.options.onSaving) throw e; });
      return 0;
    }
    const first = files[0]!;
    const bytes = encodeSeriesIndex({
      study: first.study,
      series: { ...first.series, studyInstanceUid: first.study.studyInstanceUid },
      files: files.map((f) => this.toEntry(f)),
    });
    await this.write(name, bytes);
    return bytes.length;
  }

  /**
   * A series' entries for serving: from its file when every served record's entry is there with
   * the same size and mtime; otherwise (missing, corrupt, stale) rebuilt from the DICOM files and
   * saved again.
   */
  async loadSeries(seriesInstanceUid: string, records: InstanceRecord[]): Promise<LoadedSeries> {
    // The one in memory first; when it is stale, the saved one (another process may have saved a
    // newer version since: a replica's shared index).
    const tries = this.unsaved.has(seriesFile(seriesInstanceUid)) ? [false, true] : [true];
    for (const fromFolder of tries) {
      try {
        const loaded = await this.readSeries(seriesInstanceUid, fromFolder);
        const byPath = new Map(loaded.files.map((f) => [f.path, f]));
        const stale = records.find((r) => {
          const f = byPath.get(r.file.path);
          return !f || f.size !== r.file.size || f.mtimeMs !== r.file.mtimeMs || (f.etag ?? '') !== (r.file.etag ?? '');
        });
        if (!stale) return loaded;
        if (fromFolder) this.onProblem(this.seriesPath(seriesInstanceUid), `no current entry for ${this.relative(stale.file.path)}`);
      } catch (e) {
        if (fromFolder) this.onProblem(this.seriesPath(seriesInstanceUid), (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (e as Error).message);
      }
    }
    this.rebuilt++;
    // In parallel (the parser bounds how many at once); a file gone or broken since the catalogue
    // was made is left out, and the next refresh drops it.
    const parsed = await Promise.allSettled(records.map((r) => this.parse(r.file.path)));
    const files = parsed.flatMap((p) => (p.status === 'fulfilled' ? [p.value] : []));
    const bytes = await this.writeSeries(seriesInstanceUid, files).catch(() => 0);
    return { files, bytes };
  }

  toEntry(f: IndexedFile): FileEntry {
    return {
      file: { path: this.relative(f.path), size: f.size, mtimeMs: f.mtimeMs, ...(f.etag ? { etag: f.etag } : {}) },
      image: f.image,
      frames: f.frames,
      inflated: f.source === 'inflated',
      warnings: f.warnings,
      codestreamMismatch: f.codestreamMismatch === true,
    };
  }

  fromEntry(e: FileEntry, index: SeriesIndex): IndexedFile {
    const { studyInstanceUid: _study, ...series } = index.series;
    const file: IndexedFile = {
      path: this.absolute(e.file.path), size: e.file.size, mtimeMs: e.file.mtimeMs,
      study: index.study, series, image: e.image, frames: e.frames, source: e.inflated ? 'inflated' : 'file', warnings: e.warnings,
    };
    if (e.codestreamMismatch) file.codestreamMismatch = true;
    if (e.file.etag) file.etag = e.file.etag;
    return file;
  }

  private relative(path: string): string {
    return relative(this.root, path).split(sep).join('/');
  }

  /** The absolute path of an entry; an entry naming a place outside the root makes its file untrusted. */
  private absolute(path: string): string {
    // Entries are written '/'-separated and normalised: anything else (absolute, '..', empty
    // parts) is not ours and could lead outside. Joined by hand: path.resolve costs ~5 µs an
    // entry, a noticeable part of a restart on 100,000 files.
    if (!path || path.startsWith('/') || /(^|\/)\.{1,2}(\/|$)|\/\/|\\/.test(path)) {
      throw new IndexFileError(`entry ${JSON.stringify(path)} lies outside the served folder`);
    }
    const absolute = this.root + sep + (sep === '/' ? path : path.split('/').join(sep));
    if (!inside(this.root, absolute)) throw new IndexFileError(`entry ${JSON.stringify(path)} lies outside the served folder`);
    return absolute;
  }

  /**
   * Writes a file; while files are held in memory (a save failed), or read-only, it joins them,
   * so that what is on disk stays one consistent version until they are all saved.
   */
  private async write(name: string, bytes: Uint8Array): Promise<void> {
    if (this.readOnly || this.unsaved.size > 0) {
      this.unsaved.set(name, bytes);
      return;
    }
    try {
      await this.folder.write(name, bytes);
    } catch (e) {
      if (!this.options.onSaving) throw e;
      this.unsaved.set(name, bytes);
      // Two saves may fail together (a refresh's and a series rebuilt meanwhile): one report, one timer.
      if (this.retryTimer) return;
      this.options.onSaving({ saved: false, error: e as Error, unsaved: this.unsaved.size });
      this.retryTimer = setInterval(() => void this.flush(), this.retryMs);
      this.retryTimer.unref();
    }
  }

  /** Tries to save the files held in memory (the catalogue last); resolves whether they all are. */
  async flush(): Promise<boolean> {
    if (this.readOnly) return this.unsaved.size === 0;
    await (this.flushing ??= this.flushOnce().finally(() => { this.flushing = undefined; }));
    return this.unsaved.size === 0;
  }

  private async flushOnce(): Promise<void> {
    if (this.unsaved.size === 0) return;
    const names = [...this.unsaved.keys()].sort((a, b) => Number(a === CATALOGUE_FILE) - Number(b === CATALOGUE_FILE));
    for (const name of names) {
      const bytes = this.unsaved.get(name);
      if (!bytes) continue;
      try {
        await this.folder.write(name, bytes);
      } catch {
        return; // still not: the next try
      }
      if (this.unsaved.get(name) === bytes) this.unsaved.delete(name);
    }
    if (this.unsaved.size > 0) return;
    clearInterval(this.retryTimer);
    this.retryTimer = undefined;
    this.options.onSaving?.({ saved: true, files: names.length });
  }

  /** Stops trying to save what is held in memory. */
  close(): void {
    clearInterval(this.retryTimer);
  }
}

/** A series' file in the index folder: by a hash of its UID, in 256 subfolders. */
function seriesFile(seriesInstanceUid: string): string {
  const h = createHash('sha1').update(seriesInstanceUid).digest('hex');
  return `series/${h.slice(0, 2)}/${h}.dsix`;
}
const SERIES_FOLDERS = Array.from({ length: 256 }, (_, i) => `series/${i.toString(16).padStart(2, '0')}`);

/** Series entries kept in memory: for a folder whose index cannot be written, and for tools. */
export class MemorySeriesSource implements SeriesSource {
  private readonly bySeries = new Map<string, IndexedFile[]>();

  constructor(files: Iterable<IndexedFile>) {
    for (const f of files) {
      const list = this.bySeries.get(f.series.seriesInstanceUid);
      if (list) list.push(f);
      else this.bySeries.set(f.series.seriesInstanceUid, [f]);
    }
  }

  set(seriesInstanceUid: string, files: IndexedFile[]): void {
    if (files.length) this.bySeries.set(seriesInstanceUid, files);
    else this.bySeries.delete(seriesInstanceUid);
  }

  async loadSeries(seriesInstanceUid: string): Promise<LoadedSeries> {
    const files = this.bySeries.get(seriesInstanceUid) ?? [];
    // A rough size: what the cache counts it as (it is held here anyway).
    return { files, bytes: files.reduce((n, f) => n + 2048 + f.frames.length * 32, 0) };
  }
}
