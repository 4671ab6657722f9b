// Groups indexed files into studies and series, the way a study browser lists them, and picks
// one file per SOP Instance UID: an archive may hold the same instance in several transfer syntaxes.
// It keeps only light records of every instance in memory; a series' attributes and frame tables
// are loaded when the series is opened, into a cache bounded in bytes.
import { LRUCache } from 'lru-cache';
import type { CatalogueIndex, InstanceRecord, SeriesFactsRecord, StudyFactsRecord } from '../../shared/index-format.js';
import type { ImageAttributes, SeriesManifest, SeriesSummary, StudyList, StudySummary } from '../../shared/protocol.js';
import { transferSyntax } from '../../shared/transfer-syntax.js';
import type { IndexedFile } from './index-file.js';
import { MemorySeriesSource, type SeriesSource } from './index-store.js';

export interface DuplicateFile {
  path: string;
  sopInstanceUid: string;
  /** The file served for that UID instead. */
  servedPath: string;
}

/** A series as the catalogue holds it: what the stream lists, the indexed facts, the served records. */
export interface SeriesEntry {
  summary: SeriesSummary;
  facts: SeriesFactsRecord;
  studyInstanceUid: string;
  /** The served copy of each of its instances. */
  records: InstanceRecord[];
}

/** An opened series: its manifest and its served files by SOP Instance UID. */
export interface OpenedSeries {
  manifest: Omit<SeriesManifest, 'requestId'>;
  /** By SOP Instance UID, in the series' order. */
  files: Map<string, IndexedFile>;
  /** Each instance's place in the series' order (from 0). */
  positions: Map<string, number>;
  /** The files in the series' order. */
  ordered: readonly IndexedFile[];
  bytes: number;
}

export interface CatalogueCacheStats { hits: number; misses: number; evictions: number; bytes: number; entries: number; maxBytes: number }

/** A study as the catalogue holds it: what the stream lists, the indexed facts, its series. */
export interface StudyEntry {
  summary: StudySummary;
  facts: StudyFactsRecord;
  series: SeriesEntry[];
}

/**
 * Which copy of an instance to serve: a sound one before one whose codestream contradicts its
 * attributes (damaged pixel data), then one in a lossless transfer syntax before a lossy one, then
 * one never lossy-compressed, then the one with more frames, then the first by path. Deterministic, so restarts and replicas serve the same bytes.
 */
function preferred(a: InstanceRecord, b: InstanceRecord): number {
  const damaged = Number(a.codestreamMismatch) - Number(b.codestreamMismatch);
  if (damaged) return damaged;
  const lossySyntax = (r: InstanceRecord) => Number(transferSyntax(r.transferSyntaxUid)?.lossy ?? false);
  const lossyHistory = (r: InstanceRecord) => Number(r.lossyImageCompression);
  return lossySyntax(a) - lossySyntax(b) || lossyHistory(a) - lossyHistory(b) || b.numberOfFrames - a.numberOfFrames ||
    (a.file.path < b.file.path ? -1 : a.file.path > b.file.path ? 1 : 0);
}

/** What the catalogue keeps of an indexed file. */
export function recordOf(f: IndexedFile): InstanceRecord {
  return {
    file: { path: f.path, size: f.size, mtimeMs: f.mtimeMs, ...(f.etag ? { etag: f.etag } : {}) }, sopInstanceUid: f.image.sopInstanceUid,
    seriesInstanceUid: f.series.seriesInstanceUid, numberOfFrames: f.frames.length,
    transferSyntaxUid: f.image.transferSyntaxUid, lossyImageCompression: f.image.lossyImageCompression,
    codestreamMismatch: f.codestreamMismatch === true,
  };
}

/** The catalogue index of a set of indexed files (records and the facts of their studies and series). */
export function catalogueIndexOf(files: IndexedFile[], skipped: CatalogueIndex['skipped'] = []): CatalogueIndex {
  const studies = new Map<string, StudyFactsRecord>();
  const series = new Map<string, SeriesFactsRecord>();
  for (const f of files) {
    if (!studies.has(f.study.studyInstanceUid)) studies.set(f.study.studyInstanceUid, f.study);
    if (!series.has(f.series.seriesInstanceUid)) series.set(f.series.seriesInstanceUid, { ...f.series, studyInstanceUid: f.study.studyInstanceUid });
  }
  return { studies: [...studies.values()], series: [...series.values()], instances: files.map(recordOf), skipped };
}

/** Position along the slice normal, where the image says where it is. */
function slicePosition(image: ImageAttributes): number | undefined {
  const o = image.imageOrientationPatient;
  const p = image.imagePositionPatient;
  if (o.length !== 6 || p.length !== 3) return undefined;
  const n = [o[1]! * o[5]! - o[2]! * o[4]!, o[2]! * o[3]! - o[0]! * o[5]!, o[0]! * o[4]! - o[1]! * o[3]!];
  return n[0]! * p[0]! + n[1]! * p[1]! + n[2]! * p[2]!;
}

function sortInstances(files: IndexedFile[]): IndexedFile[] {
  const positions = files.map((f) => slicePosition(f.image));
  const byPosition = positions.every((p) => p !== undefined) && new Set(positions).size === files.length;
  const keyed = files.map((f, i) => ({ f, pos: positions[i] ?? 0 }));
  keyed.sort((a, b) =>
    (byPosition ? a.pos - b.pos : 0) ||
    a.f.image.instanceNumber - b.f.image.instanceNumber ||
    (a.f.image.sopInstanceUid < b.f.image.sopInstanceUid ? -1 : a.f.image.sopInstanceUid > b.f.image.sopInstanceUid ? 1 : 0));
  return keyed.map((k) => k.f);
}

export class Catalogue {
  private readonly studies: StudyEntry[] = [];
  private readonly seriesByUid = new Map<string, SeriesEntry>();
  private readonly instances = new Map<string, InstanceRecord>();
  readonly duplicates: DuplicateFile[] = [];
  private readonly every: InstanceRecord[];
  private readonly gone = new Map<string, string>();
  private readonly opened: LRUCache<string, OpenedSeries>;
  private readonly counters = { hits: 0, misses: 0, evictions: 0 };

  /** A catalogue of files already parsed, their entries held in memory (tests, tools). */
  static fromFiles(files: IndexedFile[]): Catalogue {
    return new Catalogue(catalogueIndexOf(files), new MemorySeriesSource(files));
  }

  constructor(index: CatalogueIndex, private readonly source: SeriesSource, options: { cacheBytes?: number } = {}) {
    this.opened = new LRUCache<string, OpenedSeries>({
      maxSize: Math.max(1, options.cacheBytes ?? 64 * 1024 * 1024),
      sizeCalculation: (s) => Math.max(1, s.bytes),
      dispose: (_value, _key, reason) => { if (reason === 'evict') this.counters.evictions++; },
    });
    this.every = index.instances;
    const studyFacts = new Map(index.studies.map((s) => [s.studyInstanceUid, s]));
    const seriesFacts = new Map(index.series.map((s) => [s.seriesInstanceUid, s]));
    const chosen = new Map<string, InstanceRecord[]>();
    for (const r of index.instances) {
      const copies = chosen.get(r.sopInstanceUid);
      if (copies) copies.push(r);
      else chosen.set(r.sopInstanceUid, [r]);
    }
    for (const [uid, copies] of chosen) {
      copies.sort(preferred);
      const served = copies[0]!;
      this.instances.set(uid, served);
      for (const other of copies.slice(1)) this.duplicates.push({ path: other.file.path, sopInstanceUid: uid, servedPath: served.file.path });
    }
    const studyByUid = new Map<string, StudyEntry>();
    for (const r of this.instances.values()) {
      const seriesFact = seriesFacts.get(r.seriesInstanceUid) ??
        { seriesInstanceUid: r.seriesInstanceUid, modality: '', seriesDescription: '', seriesNumber: 0, studyInstanceUid: '', seriesDate: '', seriesTime: '' };
      const studyUid = seriesFact.studyInstanceUid;
      let study = studyByUid.get(studyUid);
      if (!study) {
        const facts = studyFacts.get(studyUid) ?? {
          studyInstanceUid: studyUid, patientName: '', patientId: '', studyDate: '', studyTime: '', studyDescription: '', accessionNumber: '',
          patientBirthDate: '', patientSex: '', studyId: '', referringPhysicianName: '',
        };
        const { studyInstanceUid, patientName, patientId, studyDate, studyTime, studyDescription, accessionNumber } = facts;
        study = {
          summary: { studyInstanceUid, patientName, patientId, studyDate, studyTime, studyDescription, accessionNumber, modalities: [], numberOfInstances: 0, numberOfFrames: 0, series: [] },
          facts, series: [],
        };
        studyByUid.set(studyUid, study);
        this.studies.push(study);
      }
      let series = this.seriesByUid.get(r.seriesInstanceUid);
      if (!series) {
        const { seriesInstanceUid, modality, seriesDescription, seriesNumber } = seriesFact;
        series = {
          summary: { seriesInstanceUid, modality, seriesDescription, seriesNumber, numberOfInstances: 0, numberOfFrames: 0 },
          facts: seriesFact, studyInstanceUid: studyUid, records: [],
        };
        this.seriesByUid.set(r.seriesInstanceUid, series);
        study.series.push(series);
      }
      series.records.push(r);
      series.summary.numberOfInstances++;
      series.summary.numberOfFrames += r.numberOfFrames;
      study.summary.numberOfInstances++;
      study.summary.numberOfFrames += r.numberOfFrames;
    }
    for (const study of this.studies) {
      study.series.sort((a, b) => a.summary.seriesNumber - b.summary.seriesNumber || (a.summary.seriesInstanceUid < b.summary.seriesInstanceUid ? -1 : 1));
      study.summary.series = study.series.map((s) => s.summary);
      study.summary.modalities = [...new Set(study.series.map((s) => s.summary.modality).filter(Boolean))];
    }
    // Newest study first, as study browsers list them.
    this.studies.sort((a, b) => (b.summary.studyDate > a.summary.studyDate ? 1 : b.summary.studyDate < a.summary.studyDate ? -1 : 0) ||
      (a.summary.studyInstanceUid < b.summary.studyInstanceUid ? -1 : 1));
  }

  get studyCount(): number { return this.studies.length; }
  get seriesCount(): number { return this.seriesByUid.size; }
  get instanceCount(): number { return this.instances.size; }
  get frameCount(): number {
    let n = 0;
    for (const r of this.instances.values()) n += r.numberOfFrames;
    return n;
  }

  /** Opened-series cache counters. */
  get cacheStats(): CatalogueCacheStats {
    return { ...this.counters, bytes: this.opened.calculatedSize, entries: this.opened.size, maxBytes: this.opened.maxSize };
  }

  listStudies(offset: number, limit: number): Omit<StudyList, 'requestId'> {
    const total = this.studies.length;
    const page = this.studies.slice(offset, offset + limit).map((s) => s.summary);
    return { studies: page, total, nextOffset: Math.min(total, offset + page.length) };
  }

  /** The study a series belongs to. */
  studyOfSeries(seriesInstanceUid: string): string | undefined {
    return this.seriesByUid.get(seriesInstanceUid)?.studyInstanceUid;
  }

  /** The study an instance belongs to. */
  studyOfInstance(sopInstanceUid: string): string | undefined {
    const r = this.instances.get(sopInstanceUid);
    return r ? this.studyOfSeries(r.seriesInstanceUid) : undefined;
  }

  /** Every study summary, newest first (for filtering by access before paging). */
  allStudies(): StudySummary[] {
    return this.studies.map((s) => s.summary);
  }

  /** Every study with its facts and series, newest first (what QIDO-RS searches). */
  studyEntries(): readonly StudyEntry[] {
    return this.studies;
  }

  /** A study by UID. */
  studyEntry(studyInstanceUid: string): StudyEntry | undefined {
    const byUid = this.studyIndex ??= new Map(this.studies.map((s) => [s.summary.studyInstanceUid, s]));
    return byUid.get(studyInstanceUid);
  }

  private studyIndex: Map<string, StudyEntry> | undefined;

  /** A series by UID. */
  seriesEntry(seriesInstanceUid: string): SeriesEntry | undefined {
    return this.seriesByUid.get(seriesInstanceUid);
  }

  hasSeries(seriesInstanceUid: string): boolean {
    return this.seriesByUid.has(seriesInstanceUid);
  }

  /** The series, loaded from its index (or from the cache). Undefined if the catalogue has no such series. */
  async openSeries(seriesInstanceUid: string): Promise<OpenedSeries | undefined> {
    const entry = this.seriesByUid.get(seriesInstanceUid);
    if (!entry) return undefined;
    const cached = this.opened.get(seriesInstanceUid);
    if (cached) {
      this.counters.hits++;
      return cached;
    }
    this.counters.misses++;
    let loading = this.loading.get(seriesInstanceUid);
    if (!loading) {
      loading = this.load(seriesInstanceUid, entry).finally(() => this.loading.delete(seriesInstanceUid));
      this.loading.set(seriesInstanceUid, loading);
    }
    return loading;
  }

  private readonly loading = new Map<string, Promise<OpenedSeries>>();

  private async load(seriesInstanceUid: string, entry: SeriesEntry): Promise<OpenedSeries> {
    const loaded = await this.source.loadSeries(seriesInstanceUid, entry.records);
    const byPath = new Map(loaded.files.map((f) => [f.path, f]));
    const served = entry.records.map((r) => byPath.get(r.file.path)).filter((f): f is IndexedFile => f !== undefined);
    const files = sortInstances(served);
    const opened: OpenedSeries = {
      manifest: {
        studyInstanceUid: entry.studyInstanceUid, seriesInstanceUid, modality: entry.summary.modality,
        seriesDescription: entry.summary.seriesDescription, seriesNumber: entry.summary.seriesNumber,
        instances: files.map((f) => f.image), numberOfFrames: files.reduce((n, f) => n + f.frames.length, 0),
        study: this.studyEntry(entry.studyInstanceUid)?.summary ?? null,
      },
      files: new Map(files.map((f) => [f.image.sopInstanceUid, f])),
      positions: new Map(files.map((f, i) => [f.image.sopInstanceUid, i])),
      ordered: files,
      bytes: loaded.bytes,
    };
    this.opened.set(seriesInstanceUid, opened);
    return opened;
  }

  /** The manifest of a series (loads it). */
  async series(seriesInstanceUid: string): Promise<Omit<SeriesManifest, 'requestId'> | undefined> {
    return (await this.openSeries(seriesInstanceUid))?.manifest;
  }

  /** The light record of the served copy of an instance. */
  record(sopInstanceUid: string): InstanceRecord | undefined {
    return this.instances.get(sopInstanceUid);
  }

  /** The served file of an instance, if its series is in the cache now (no I/O). */
  loadedInstance(sopInstanceUid: string): IndexedFile | undefined {
    const r = this.instances.get(sopInstanceUid);
    return r ? this.opened.peek(r.seriesInstanceUid)?.files.get(sopInstanceUid) : undefined;
  }

  /** The served file of an instance (loads its series). */
  async instance(sopInstanceUid: string): Promise<IndexedFile | undefined> {
    const r = this.instances.get(sopInstanceUid);
    if (!r) return undefined;
    return (await this.openSeries(r.seriesInstanceUid))?.files.get(sopInstanceUid);
  }

  /** Every indexed file's record (duplicates too). */
  allRecords(): InstanceRecord[] {
    return this.every;
  }

  /** Why an instance is not here any more (its file was deleted), for error messages. */
  goneReason(sopInstanceUid: string): string | undefined {
    const path = this.gone.get(sopInstanceUid);
    return path === undefined ? undefined : `its file ${path} was deleted`;
  }

  /** @internal: the server notes instances whose files were deleted. */
  markGone(sopInstanceUid: string, path: string): void {
    this.gone.set(sopInstanceUid, path);
  }

  /** Takes over the previous catalogue's opened series that did not change, and its notes of deleted files. */
  adopt(previous: Catalogue, changedSeries: Set<string>): void {
    for (const [uid, path] of previous.gone) if (!this.instances.has(uid) && !this.gone.has(uid) && this.gone.size < 100_000) this.gone.set(uid, path);
    for (const [uid, opened] of previous.opened.entries()) {
      if (!changedSeries.has(uid) && this.seriesByUid.has(uid)) this.opened.set(uid, opened);
    }
  }
}
