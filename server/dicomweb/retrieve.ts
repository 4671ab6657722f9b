// WADO-RS retrieval (PS3.18 §10.4): frames, metadata, the stored instances and bulk data of the
// instances a request resolved to. Frames come through the frame source and its cache, as the
// stream's do; metadata from each file's head, kept in a small cache bounded in bytes.
import type { ServerResponse } from 'node:http';
import { LRUCache } from 'lru-cache';
import { EXPLICIT_VR_BIG_ENDIAN } from '../../shared/transfer-syntax.js';
import type { FrameAt, FrameSource } from '../files/frame-source.js';
import type { OpenedSeries } from '../index/catalogue.js';
import type { IndexedFile } from '../index/index-file.js';
import { chooseFrameOffer, chooseInstances, describeOffers, frameOffers, type FrameOffer, type MediaRange } from './accept.js';
import type { Dictionary } from './dictionary.js';
import type { DicomJsonDataSet } from './dicom-json.js';
import { bulkElement, instanceMetadata, littleEndian } from './metadata.js';
import { MultipartWriter, whenWritten, writer } from './multipart.js';
import { nativeFrame } from './native-frame.js';
import { HttpError } from './http-error.js';

/** An instance a request named, with the address its bulk data URIs start with. */
export interface Resolved {
  file: IndexedFile;
  url: string;
  /** Where a single instance asked for lies in its series (to read the next ones ahead). */
  place?: { series: OpenedSeries; position: number };
}

/** Series whose last single-instance frame request is remembered, to tell a stack read in order. */
const SERIES_FOLLOWED = 1024;

/** Metadata heads read at once for one series or study request. */
const METADATA_READS_AT_ONCE = 8;

export class Retriever {
  private readonly metadataCache: LRUCache<string, { json: DicomJsonDataSet; bytes: number }>;
  /** Per series, the place of the instance whose frame was asked for last. */
  private readonly lastPlace = new Map<string, number>();

  constructor(private readonly source: FrameSource, private readonly dictionary: () => Promise<Dictionary>, metadataCacheBytes = 32 * 1024 * 1024) {
    this.metadataCache = new LRUCache({ maxSize: metadataCacheBytes, sizeCalculation: (v) => Math.max(1, v.bytes) });
  }

  /** `…/frames/{list}`: the frames asked for, in the order asked, as the Accept header prefers. */
  async frames(res: ServerResponse, instance: Resolved, numbers: number[], accept: readonly MediaRange[]): Promise<void> {
    const { file } = instance;
    const offers = frameOffers(file.image);
    const choice = chooseFrameOffer(accept, offers, numbers.length === 1);
    if (!choice) throw new HttpError(406, `the frames of this instance are available as ${describeOffers(offers)}`);
    for (const n of numbers) {
      if (!file.frames[n - 1]) throw new HttpError(404, `frame ${n} of ${file.frames.length}`);
    }
    const partType = `${choice.offer.mediaType}; transfer-syntax=${choice.offer.transferSyntaxUid}`;
    const recycle = (bytes: Uint8Array) => () => this.source.recycle(bytes);
    const ahead = (from: number) => numbers.length === 1 ? this.followingFrames(instance, numbers[0]!) : framesAt(file, numbers.slice(from, from + this.source.readahead));
    if (!choice.multipart) {
      const bytes = await this.frameBytes(file, numbers[0]!, ahead(1), choice.offer);
      return send(res, false, partType, bytes, recycle(bytes));
    }
    // The first frame is read before the status line: an unreadable frame still gets an error answer.
    let bytes = await this.frameBytes(file, numbers[0]!, ahead(1), choice.offer);
    const location = (n: number) => `${instance.url}/frames/${n}`;
    if (numbers.length === 1) {
      // One frame (what viewers ask most): one write with a Content-Length, no chunked framing.
      return MultipartWriter.single(res, choice.offer.mediaType, partType, bytes, location(numbers[0]!), recycle(bytes));
    }
    const out = new MultipartWriter(res, choice.offer.mediaType);
    for (let i = 0; i < numbers.length; i++) {
      // The next frame is read while this one is written.
      const next = i + 1 < numbers.length ? this.frameBytes(file, numbers[i + 1]!, ahead(i + 2), choice.offer) : undefined;
      next?.catch(() => undefined); // awaited below; not unhandled if this write fails first
      await out.part(partType, bytes, location(numbers[i]!), recycle(bytes));
      if (next) bytes = await next;
    }
    out.end();
  }

  /**
   * The same frame of the instances after this one in its series, when the viewer reads the stack
   * in order (this instance comes a little after the one asked for last): those are asked for next.
   */
  private followingFrames(instance: Resolved, frameNumber: number): FrameAt[] {
    const place = instance.place;
    if (!place) return [];
    const key = place.series.manifest.seriesInstanceUid;
    const last = this.lastPlace.get(key);
    this.lastPlace.delete(key); // re-inserted last: the Map's first key is the longest unused
    this.lastPlace.set(key, place.position);
    if (this.lastPlace.size > SERIES_FOLLOWED) this.lastPlace.delete(this.lastPlace.keys().next().value!);
    const depth = this.source.readahead;
    if (last === undefined || place.position <= last || place.position - last > depth + 1) return [];
    const following = place.series.ordered.slice(place.position + 1, place.position + 1 + depth);
    return following.filter((f) => f.frames[frameNumber - 1]).map((f) => framesAt(f, [frameNumber])[0]!);
  }

  private async frameBytes(file: IndexedFile, frameNumber: number, next: readonly FrameAt[], offer: FrameOffer): Promise<Uint8Array> {
    const location = file.frames[frameNumber - 1]!;
    const bytes = await this.source.frame(framesAt(file, [frameNumber])[0]!, next);
    if (file.image.encapsulated) return bytes;
    const converted = nativeFrame(bytes, file.image, location.bitOffset, offer.transferSyntaxUid !== EXPLICIT_VR_BIG_ENDIAN);
    if (converted.buffer !== bytes.buffer) this.source.recycle(bytes);
    return converted;
  }

  /** `…/metadata` of one instance or many (a series, a study): a JSON array, in the order given. */
  async metadata(instances: Resolved[]): Promise<DicomJsonDataSet[]> {
    const dictionary = await this.dictionary();
    const out: DicomJsonDataSet[] = new Array(instances.length);
    let next = 0;
    const worker = async () => {
      while (next < instances.length) {
        const i = next++;
        out[i] = await this.instanceMetadata(instances[i]!, dictionary);
      }
    };
    await Promise.all(Array.from({ length: Math.min(METADATA_READS_AT_ONCE, instances.length) }, worker));
    return out;
  }

  private async instanceMetadata({ file, url }: Resolved, dictionary: Dictionary): Promise<DicomJsonDataSet> {
    const key = `${file.path}\0${file.size}\0${file.mtimeMs}\0${url}`;
    const cached = this.metadataCache.get(key);
    if (cached) return cached.json;
    const json = instanceMetadata(await this.source.head(file), url, dictionary, file.image.bigEndian);
    this.metadataCache.set(key, { json, bytes: JSON.stringify(json).length });
    return json;
  }

  /** A study, series or instance as its stored files (`application/dicom`), streamed one after another. */
  async instances(res: ServerResponse, instances: Resolved[], accept: readonly MediaRange[]): Promise<void> {
    const stored = new Set(instances.map((r) => r.file.image.transferSyntaxUid));
    const choice = chooseInstances(accept, stored, instances.length === 1);
    if (!choice) throw new HttpError(406, `instances are available as stored only: multipart/related; type="application/dicom"; transfer-syntax=${[...stored].join(' or ')} (or transfer-syntax=*)`);
    if (!choice.multipart) {
      const { file } = instances[0]!;
      res.writeHead(200, { 'content-type': 'application/dicom', 'content-length': file.size });
      await this.source.pipeFile(file, writer(res));
      res.end();
      return;
    }
    const out = new MultipartWriter(res, 'application/dicom');
    for (const { file, url } of instances) {
      await out.streamedPart(`application/dicom; transfer-syntax=${file.image.transferSyntaxUid}`, file.size, (write) => this.source.pipeFile(file, write), url);
    }
    out.end();
  }

  /** `…/bulkdata/{path}`: Pixel Data (its frames, as `frames` gives them) or another binary value of the head. */
  async bulkdata(res: ServerResponse, instance: Resolved, path: string[], accept: readonly MediaRange[]): Promise<void> {
    const { file } = instance;
    if (path.length === 1 && path[0]!.toUpperCase() === '7FE00010') {
      const all = file.frames.map((_, i) => i + 1);
      if (file.image.encapsulated || all.length === 1) return this.frames(res, instance, all, accept);
      // Native pixel data: one value, every frame in order (byte-aligned, little endian unless asked as stored).
      const offers = frameOffers(file.image);
      const choice = chooseFrameOffer(accept, offers, true);
      if (!choice) throw new HttpError(406, `pixel data is available as ${describeOffers(offers)}`);
      const parts = [];
      for (const n of all) parts.push(await this.frameBytes(file, n, framesAt(file, all.slice(n, n + this.source.readahead)), choice.offer));
      const value = Buffer.concat(parts);
      for (const part of parts) this.source.recycle(part);
      return send(res, choice.multipart, `${choice.offer.mediaType}; transfer-syntax=${choice.offer.transferSyntaxUid}`, value);
    }
    const element = bulkElement(await this.source.head(file), path, await this.dictionary());
    if (!element) throw new HttpError(404, `no bulk data at ${path.join('/').slice(0, 200)}`);
    const choice = chooseFrameOffer(accept, [{ transferSyntaxUid: '1.2.840.10008.1.2.1', mediaType: 'application/octet-stream' }], true);
    if (!choice) throw new HttpError(406, 'bulk data is available as multipart/related; type="application/octet-stream"');
    return send(res, choice.multipart, 'application/octet-stream', littleEndian(element.bytes, element.vr, file.image.bigEndian));
  }
}

/** Frames (numbered from 1) of a file, as the frame source reads them. */
function framesAt(file: IndexedFile, numbers: readonly number[]): FrameAt[] {
  return numbers.map((n) => ({ file, location: file.frames[n - 1]!, frameIndex: n - 1 }));
}

/** One body: bare with its Content-Type, or as the one part of a multipart/related answer; `written` as for writer(). */
function send(res: ServerResponse, multipart: boolean, type: string, bytes: Uint8Array, written?: () => void): void {
  if (!multipart) {
    res.writeHead(200, { 'content-type': type, 'content-length': bytes.length });
    res.end(bytes, whenWritten(written));
    return;
  }
  MultipartWriter.single(res, type.split(';')[0]!, type, bytes, undefined, written);
}
