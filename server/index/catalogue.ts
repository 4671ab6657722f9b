// Groups indexed files into studies and series, the way a study browser lists them, and picks
// one file per SOP Instance UID: an archive may hold the same instance in several transfer syntaxes.
import type { ImageAttributes, SeriesManifest, SeriesSummary, StudyList, StudySummary } from '../../shared/protocol.js';
import { transferSyntax } from '../../shared/transfer-syntax.js';
import type { IndexedFile } from './index-file.js';

export interface DuplicateFile {
  path: string;
  sopInstanceUid: string;
  /** The file served for that UID instead. */
  servedPath: string;
}

interface SeriesEntry {
  summary: SeriesSummary;
  studyInstanceUid: string;
  files: IndexedFile[];
}

interface StudyEntry {
  summary: StudySummary;
  series: SeriesEntry[];
}

/**
 * Which copy of an instance to serve: one in a lossless transfer syntax before a lossy one, then
 * one never lossy-compressed, then the one with more frames, then the first by path. Deterministic, so restarts and replicas serve the same bytes.
 */
function preferred(a: IndexedFile, b: IndexedFile): number {
  const lossySyntax = (f: IndexedFile) => Number(transferSyntax(f.image.transferSyntaxUid)?.lossy ?? false);
  const lossyHistory = (f: IndexedFile) => Number(f.image.lossyImageCompression);
  return lossySyntax(a) - lossySyntax(b) || lossyHistory(a) - lossyHistory(b) || b.frames.length - a.frames.length ||
    (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
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
  private readonly instances = new Map<string, IndexedFile>();
  readonly duplicates: DuplicateFile[] = [];

  constructor(files: IndexedFile[]) {
    const chosen = new Map<string, IndexedFile[]>();
    for (const f of files) {
      const copies = chosen.get(f.image.sopInstanceUid);
      if (copies) copies.push(f);
      else chosen.set(f.image.sopInstanceUid, [f]);
    }
    for (const [uid, copies] of chosen) {
      copies.sort(preferred);
      const served = copies[0]!;
      this.instances.set(uid, served);
      for (const other of copies.slice(1)) this.duplicates.push({ path: other.path, sopInstanceUid: uid, servedPath: served.path });
    }
    const studyByUid = new Map<string, StudyEntry>();
    for (const f of this.instances.values()) {
      let study = studyByUid.get(f.study.studyInstanceUid);
      if (!study) {
        study = {
          summary: { ...f.study, modalities: [], numberOfInstances: 0, numberOfFrames: 0, series: [] },
          series: [],
        };
        studyByUid.set(f.study.studyInstanceUid, study);
        this.studies.push(study);
      }
      let series = this.seriesByUid.get(f.series.seriesInstanceUid);
      if (!series) {
        series = { summary: { ...f.series, numberOfInstances: 0, numberOfFrames: 0 }, studyInstanceUid: f.study.studyInstanceUid, files: [] };
        this.seriesByUid.set(f.series.seriesInstanceUid, series);
        study.series.push(series);
      }
      series.files.push(f);
      series.summary.numberOfInstances++;
      series.summary.numberOfFrames += f.frames.length;
      study.summary.numberOfInstances++;
      study.summary.numberOfFrames += f.frames.length;
    }
    for (const study of this.studies) {
      study.series.sort((a, b) => a.summary.seriesNumber - b.summary.seriesNumber || (a.summary.seriesInstanceUid < b.summary.seriesInstanceUid ? -1 : 1));
      study.summary.series = study.series.map((s) => s.summary);
      study.summary.modalities = [...new Set(study.series.map((s) => s.summary.modality).filter(Boolean))];
    }
    for (const series of this.seriesByUid.values()) series.files = sortInstances(series.files);
    // Newest study first, as study browsers list them.
    this.studies.sort((a, b) => (b.summary.studyDate > a.summary.studyDate ? 1 : b.summary.studyDate < a.summary.studyDate ? -1 : 0) ||
      (a.summary.studyInstanceUid < b.summary.studyInstanceUid ? -1 : 1));
  }

  get studyCount(): number { return this.studies.length; }
  get seriesCount(): number { return this.seriesByUid.size; }
  get instanceCount(): number { return this.instances.size; }
  get frameCount(): number {
    let n = 0;
    for (const f of this.instances.values()) n += f.frames.length;
    return n;
  }

  listStudies(offset: number, limit: number): Omit<StudyList, 'requestId'> {
    const total = this.studies.length;
    const page = this.studies.slice(offset, offset + limit).map((s) => s.summary);
    return { studies: page, total, nextOffset: Math.min(total, offset + page.length) };
  }

  series(seriesInstanceUid: string): Omit<SeriesManifest, 'requestId'> | undefined {
    const s = this.seriesByUid.get(seriesInstanceUid);
    if (!s) return undefined;
    return {
      studyInstanceUid: s.studyInstanceUid,
      seriesInstanceUid,
      modality: s.summary.modality,
      seriesDescription: s.summary.seriesDescription,
      seriesNumber: s.summary.seriesNumber,
      instances: s.files.map((f) => f.image),
      numberOfFrames: s.summary.numberOfFrames,
    };
  }

  instance(sopInstanceUid: string): IndexedFile | undefined {
    return this.instances.get(sopInstanceUid);
  }
}
