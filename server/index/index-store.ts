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

export class IndexStore implements SeriesSource {
  /** Series files rebuilt from the DICOM files because they could not be trusted. */
  rebuilt = 0;
  /** Never write: the index is another process's (a replica's --read-only-index); rebuilds stay in memory. */
  readOnly = false;

  /** Where the files are. */
  readonly folder: IndexFolder;

  constructor(
    readonly root: string,
    /** The index folder, or its path on disk. */
    folder: IndexFolder | string,
    /** Parses one DICOM file (rebuilding a series file that cannot be trusted). */
    private readonly parse: (path: string) => Promise<IndexedFile>,
    private readonly onProblem: IndexProblem = () => undefined,
  ) {
    this.folder = typeof folder === 'string' ? new LocalIndexFolder(folder) : folder;
  }

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
      bytes = await this.folder.read(CATALOGUE_FILE);
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

  /** The series file's entries; throws if it is missing or cannot be trusted. */
  async readSeries(seriesInstanceUid: string): Promise<LoadedSeries> {
    const bytes = await this.folder.read(seriesFile(seriesInstanceUid));
    if (!bytes) throw Object.assign(new Error('missing'), { code: 'ENOENT' });
    const index = decodeSeriesIndex(bytes);
    return { files: index.files.map((e) => this.fromEntry(e, index)), bytes: bytes.length };
  }

  /** Writes a series file from its files' entries (all of one series); none: removes it. */
  async writeSeries(seriesInstanceUid: string, files: IndexedFile[]): Promise<number> {
    const name = seriesFile(seriesInstanceUid);
    if (files.length === 0) {
      if (!this.readOnly) await this.folder.remove(name);
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
    try {
      const loaded = await this.readSeries(seriesInstanceUid);
      const byPath = new Map(loaded.files.map((f) => [f.path, f]));
      const stale = records.find((r) => {
        const f = byPath.get(r.file.path);
        return !f || f.size !== r.file.size || f.mtimeMs !== r.file.mtimeMs;
      });
      if (!stale) return loaded;
      this.onProblem(this.seriesPath(seriesInstanceUid), `no current entry for ${this.relative(stale.file.path)}`);
    } catch (e) {
      this.onProblem(this.seriesPath(seriesInstanceUid), (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (e as Error).message);
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

  private async write(name: string, bytes: Uint8Array): Promise<void> {
    if (this.readOnly) return;
    await this.folder.write(name, bytes);
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
