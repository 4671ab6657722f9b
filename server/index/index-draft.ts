// The index a refresh is building: what it keeps of the previous one (files whose size and mtime
// match), what it parses anew, and saving the series touched since the last save. refresh.ts
// drives it; nothing here walks folders or parses files.
import type { CatalogueIndex, FileStamp, InstanceRecord, SkippedRecord } from '../../shared/index-format.js';
import { catalogueIndexOf } from './catalogue.js';
import type { IndexError } from './index-error.js';
import type { IndexedFile } from './index-file.js';
import type { IndexStore } from './index-store.js';
import { byPath } from './path-order.js';

const same = (a: FileStamp, b: FileStamp) => a.size === b.size && a.mtimeMs === b.mtimeMs && (a.etag ?? '') === (b.etag ?? '');
export function pushTo<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

export class IndexDraft {
  readonly keptInstances = new Map<string, InstanceRecord>();
  private readonly keptSkipped = new Map<string, SkippedRecord>();
  /** New and changed files, to parse. */
  readonly toParse: FileStamp[] = [];
  /** Series whose files changed (entries added, replaced or removed). */
  readonly changedSeries = new Set<string>();
  /** Entries of the previous index whose files are gone. */
  readonly removed: number;
  /** Every indexed file parsed in this run. */
  readonly parsedFiles: IndexedFile[] = [];
  private readonly keptBySeries = new Map<string, InstanceRecord[]>();
  private readonly freshBySeries = new Map<string, IndexedFile[]>();
  /** Facts of studies and series from the previous index; parsed files add theirs. */
  private readonly studies: Map<string, CatalogueIndex['studies'][number]>;
  private readonly series: Map<string, CatalogueIndex['series'][number]>;
  /** Series touched since the last save. */
  private readonly dirty = new Set<string>();
  /** Entries of a series' unchanged files, from its saved file (rebuilt if untrusted); read once a refresh. */
  private readonly keptCache = new Map<string, Promise<IndexedFile[]>>();

  constructor(
    stamps: FileStamp[], previous: CatalogueIndex | undefined,
    /** Entries the walk left out (links leading outside, FIFOs, loops…): reported as skipped. */
    private readonly refused: SkippedRecord[],
    private readonly store: IndexStore | undefined,
  ) {
    const before = new Map<string, InstanceRecord | SkippedRecord>();
    for (const r of previous?.instances ?? []) before.set(r.file.path, r);
    // What the walk left out is found again by every walk: reported as it is now, never kept. (A
    // link refused as leading outside carries its target's stamp: with --follow-symlinks the same
    // stamp must be parsed, not kept as refused.)
    const leftOut = new Set(refused.map((r) => r.file.path));
    for (const r of previous?.skipped ?? []) if (r.code !== 'OUTSIDE_ROOT' && !leftOut.has(r.file.path)) before.set(r.file.path, r);
    for (const s of stamps) {
      const old = before.get(s.path);
      if (!old || !same(old.file, s)) this.toParse.push(s);
      else if ('sopInstanceUid' in old) this.keptInstances.set(s.path, old);
      else this.keptSkipped.set(s.path, old);
    }
    for (const r of previous?.instances ?? []) if (!this.keptInstances.has(r.file.path)) this.changedSeries.add(r.seriesInstanceUid);
    for (const uid of this.changedSeries) this.dirty.add(uid);
    const present = new Set(stamps.map((s) => s.path));
    this.removed = [...before.keys()].filter((p) => !present.has(p)).length;
    for (const r of this.keptInstances.values()) pushTo(this.keptBySeries, r.seriesInstanceUid, r);
    this.studies = new Map((previous?.studies ?? []).map((s) => [s.studyInstanceUid, s]));
    this.series = new Map((previous?.series ?? []).map((s) => [s.seriesInstanceUid, s]));
  }

  /** Something is waiting to be saved. */
  get unsaved(): boolean {
    return this.dirty.size > 0;
  }

  addParsed(file: IndexedFile): void {
    const uid = file.series.seriesInstanceUid;
    this.parsedFiles.push(file);
    pushTo(this.freshBySeries, uid, file);
    this.dirty.add(uid);
    this.changedSeries.add(uid);
  }

  addSkipped(stamp: FileStamp, error: IndexError): void {
    this.keptSkipped.set(stamp.path, { file: stamp, code: error.code, reason: error.message });
  }

  /** Keeps the parsed files in path order, whatever order the parses finished in. */
  sortParsed(): void {
    this.parsedFiles.sort(byPath);
  }

  /** The catalogue as it stands: kept and parsed instances, the studies and series that still have some. */
  current(): CatalogueIndex {
    const fresh = catalogueIndexOf(this.parsedFiles);
    for (const s of fresh.studies) this.studies.set(s.studyInstanceUid, s);
    for (const s of fresh.series) this.series.set(s.seriesInstanceUid, s);
    const instances = [...this.keptInstances.values(), ...fresh.instances];
    const live = new Set(instances.map((r) => r.seriesInstanceUid));
    const liveSeries = [...this.series.values()].filter((s) => live.has(s.seriesInstanceUid));
    const liveStudies = new Set(liveSeries.map((s) => s.studyInstanceUid));
    return {
      studies: [...this.studies.values()].filter((s) => liveStudies.has(s.studyInstanceUid)),
      series: liveSeries,
      instances,
      skipped: [...this.keptSkipped.values(), ...this.refused].sort((a, b) => byPath(a.file, b.file)),
    };
  }

  /** Saves the series touched since the last save, then the catalogue. */
  async save(): Promise<void> {
    const store = this.store;
    if (!store) return;
    // Results go on arriving while this writes: what arrives now is saved next time.
    const uids = [...this.dirty];
    this.dirty.clear();
    for (const uid of uids) {
      const kept = await this.keptEntries(store, uid);
      await store.writeSeries(uid, [...kept, ...(this.freshBySeries.get(uid) ?? [])]);
    }
    await store.writeCatalogue(this.current());
  }

  private keptEntries(store: IndexStore, uid: string): Promise<IndexedFile[]> {
    let entries = this.keptCache.get(uid);
    if (!entries) {
      const records = this.keptBySeries.get(uid) ?? [];
      entries = records.length
        ? store.loadSeries(uid, records).then((l) => l.files.filter((f) => this.keptInstances.has(f.path)))
        : Promise.resolve([]);
      this.keptCache.set(uid, entries);
    }
    return entries;
  }
}
