// What a connection's requests name, found in the catalogue and filtered by its access: the
// studies it may list, the series it may open, and the frames it asks for (loading the series
// indexes not in the cache first). A study the client may not see is answered exactly as one
// that does not exist. Nothing is sent from here: the session turns the results into answers.
import type { RequestFrames, SeriesManifest, StudyList, WireErrorCodeName } from '../../shared/protocol.js';
import type { Catalogue } from '../index/catalogue.js';
import type { FrameLocation } from '../index/frame-table.js';
import type { IndexedFile } from '../index/index-file.js';
import { printable } from './refusals.js';
import type { Work } from './scheduler.js';
import type { SessionAccess } from './session-access.js';

/** A frame the scheduler hands out. */
export interface QueuedFrame {
  /** When the request asking for it arrived (performance.now()), for the latency histogram. */
  askedAt: number;
  file: IndexedFile;
  location: FrameLocation;
  frameIndex: number;
  sopInstanceUid: string;
  frameNumber: number;
}

/** A frame of a request that cannot be sent: unknown (or not visible) instance, frame out of range. */
export interface FrameFailure {
  code: WireErrorCodeName;
  message: string;
  sopInstanceUid: string;
  frameNumber: number;
}

export interface ResolvedFrames {
  /** The frames to queue, in the request's order (position as asked, else the index in the request). */
  work: Array<Omit<Work<QueuedFrame>, 'requestId'>>;
  failures: FrameFailure[];
}

type Lookup = (sopInstanceUid: string) => IndexedFile | undefined;

export class FrameResolver {
  constructor(private readonly catalogue: () => Catalogue, private readonly access: SessionAccess) {}

  /** One page of the studies this client may see. */
  studies(offset: number, pageSize: number): Omit<StudyList, 'requestId'> | Promise<Omit<StudyList, 'requestId'>> {
    const catalogue = this.catalogue();
    if (this.access.allowsAll) return catalogue.listStudies(offset, pageSize);
    const all = catalogue.allStudies();
    return this.access.decide(all.map((s) => s.studyInstanceUid)).then(() => {
      const visible = all.filter((s) => this.access.verdict(s.studyInstanceUid));
      const studies = visible.slice(offset, offset + pageSize);
      return { studies, total: visible.length, nextOffset: Math.min(visible.length, offset + studies.length) };
    });
  }

  /** The manifest of a series this client may see; undefined (at once, or resolved) when it may not or there is none. */
  series(seriesInstanceUid: string): Promise<Omit<SeriesManifest, 'requestId'> | undefined> | undefined {
    const catalogue = this.catalogue();
    const study = catalogue.studyOfSeries(seriesInstanceUid);
    if (study === undefined) return undefined;
    return this.access.decide([study]).then(() => catalogue.series(seriesInstanceUid)).then((series) => (series && this.access.verdict(study) ? series : undefined));
  }

  /** The frames of a request: at once when every instance is loaded and every study decided, else once they are. */
  frames(r: RequestFrames, askedAt: number): ResolvedFrames | Promise<ResolvedFrames> {
    const catalogue = this.catalogue();
    const missing = new Set<string>();
    const studies = new Set<string>();
    // Per-study checks only when the grant or a hook limits studies: the open case pays nothing per frame.
    const everyStudy = this.access.allowsAll;
    for (const ref of r.frames) {
      if (!everyStudy) {
        const study = catalogue.studyOfInstance(ref.sopInstanceUid);
        if (study !== undefined && this.access.verdict(study) === undefined) studies.add(study);
      }
      if (catalogue.loadedInstance(ref.sopInstanceUid)) continue;
      const record = catalogue.record(ref.sopInstanceUid);
      if (record) missing.add(record.seriesInstanceUid);
    }
    const visible = (uid: string) => {
      if (everyStudy) return true;
      const study = catalogue.studyOfInstance(uid);
      return study !== undefined && this.access.verdict(study) === true;
    };
    if (missing.size === 0 && studies.size === 0) {
      return this.resolve(r, (uid) => (visible(uid) ? catalogue.loadedInstance(uid) : undefined), askedAt);
    }
    return Promise.all([this.access.decide(studies), ...[...missing].map((uid) => catalogue.openSeries(uid))]).then(([, ...opened]) =>
      // From what was loaded (the cache may be smaller than the series), else the cache.
      this.resolve(r, (uid) => {
        if (!visible(uid)) return undefined;
        for (const s of opened) { const f = s?.files.get(uid); if (f) return f; }
        return catalogue.loadedInstance(uid);
      }, askedAt));
  }

  private resolve(r: RequestFrames, instance: Lookup, askedAt: number): ResolvedFrames {
    const work: ResolvedFrames['work'] = [];
    const failures: FrameFailure[] = [];
    r.frames.forEach((ref, index) => {
      const { sopInstanceUid, frameNumber } = ref;
      const file = instance(sopInstanceUid);
      if (!file) {
        const gone = this.catalogue().goneReason(sopInstanceUid);
        failures.push({ code: 'UNKNOWN_INSTANCE', message: `no instance ${printable(sopInstanceUid)}${gone ? `: ${gone}` : ''}`, sopInstanceUid, frameNumber });
        return;
      }
      const location = file.frames[frameNumber - 1];
      if (!location) {
        failures.push({ code: 'FRAME_OUT_OF_RANGE', message: `frame ${frameNumber} of ${file.frames.length}`, sopInstanceUid, frameNumber });
        return;
      }
      work.push({
        position: ref.position ?? index, length: location.length,
        frame: { askedAt, file, location, frameIndex: frameNumber - 1, sopInstanceUid, frameNumber },
      });
    });
    return { work, failures };
  }
}
