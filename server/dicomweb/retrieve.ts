// WADO-RS retrieval (PS3.18 §10.4): frames, metadata, the stored instances and bulk data of the
// instances a request resolved to. Frames come through the frame source and its cache, as the
// stream's do; metadata from each file's head, kept in a small cache bounded in bytes.
import type { ServerResponse } from 'node:http';
import { LRUCache } from 'lru-cache';
import { EXPLICIT_VR_BIG_ENDIAN } from '../../shared/transfer-syntax.js';
import type { FrameSource } from '../files/frame-source.js';
import type { IndexedFile } from '../index/index-file.js';
import { chooseFrameOffer, chooseInstances, describeOffers, frameOffers, type FrameOffer, type MediaRange } from './accept.js';
import type { Dictionary } from './dictionary.js';
import type { DicomJsonDataSet } from './dicom-json.js';
import { bulkElement, instanceMetadata, littleEndian } from './metadata.js';
import { MultipartWriter, writer } from './multipart.js';
import { nativeFrame } from './native-frame.js';
import { HttpError } from './http-error.js';

/** An instance a request named, with the address its bulk data URIs start with. */
export interface Resolved { file: IndexedFile; url: string }

/** Metadata heads read at once for one series or study request. */
const METADATA_READS_AT_ONCE = 8;

export class Retriever {
  private readonly metadataCache: LRUCache<string, { json: DicomJsonDataSet; bytes: number }>;

  constructor(private readonly source: FrameSource, private readonly dictionary: () => Promise<Dictionary>, metadataCacheBytes = 32 * 1024 * 1024) {
    this.metadataCache = new LRUCache({ maxSize: metadataCacheBytes, sizeCalculation: (v) => Math.max(1, v.bytes) });
  }

  /** `…/frames/{list}`: the frames asked for, in the order asked, as the Accept header prefers. */
  async frames(res: ServerResponse, instance: Resolved, numbers: number[], accept: MediaRange[]): Promise<void> {
    const { file } = instance;
    const offers = frameOffers(file.image);
    const choice = chooseFrameOffer(accept, offers, numbers.length === 1);
    if (!choice) throw new HttpError(406, `the frames of this instance are available as ${describeOffers(offers)}`);
    for (const n of numbers) {
      if (!file.frames[n - 1]) throw new HttpError(404, `frame ${n} of ${file.frames.length}`);
    }
    const partType = `${choice.offer.mediaType}; transfer-syntax=${choice.offer.transferSyntaxUid}`;
    if (!choice.multipart) return send(res, false, partType, await this.frameBytes(file, numbers[0]!, [], choice.offer));
    // The first frame is read before the status line: an unreadable frame still gets an error answer.
    let bytes = await this.frameBytes(file, numbers[0]!, numbers.slice(1), choice.offer);
    const location = (n: number) => `${instance.url}/frames/${n}`;
    if (numbers.length === 1) {
      // One frame (what viewers ask most): one write with a Content-Length, no chunked framing.
      return MultipartWriter.single(res, choice.offer.mediaType, partType, bytes, location(numbers[0]!));
    }
    const out = new MultipartWriter(res, choice.offer.mediaType);
    for (let i = 0; i < numbers.length; i++) {
      // The next frame is read while this one is written.
      const next = i + 1 < numbers.length ? this.frameBytes(file, numbers[i + 1]!, numbers.slice(i + 2), choice.offer) : undefined;
      next?.catch(() => undefined); // awaited below; not unhandled if this write fails first
      await out.part(partType, bytes, location(numbers[i]!));
      if (next) bytes = await next;
    }
    out.end();
  }

  private async frameBytes(file: IndexedFile, frameNumber: number, after: number[], offer: FrameOffer): Promise<Uint8Array> {
    const location = file.frames[frameNumber - 1]!;
    const at = (n: number) => ({ file, location: file.frames[n - 1]!, frameIndex: n - 1 });
    const bytes = await this.source.frame(at(frameNumber), after.slice(0, this.source.readahead).map(at));
    if (file.image.encapsulated) return bytes;
    return nativeFrame(bytes, file.image, location.bitOffset, offer.transferSyntaxUid !== EXPLICIT_VR_BIG_ENDIAN);
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
  async instances(res: ServerResponse, instances: Resolved[], accept: MediaRange[]): Promise<void> {
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
  async bulkdata(res: ServerResponse, instance: Resolved, path: string[], accept: MediaRange[]): Promise<void> {
    const { file } = instance;
    if (path.length === 1 && path[0]!.toUpperCase() === '7FE00010') {
      const all = file.frames.map((_, i) => i + 1);
      if (file.image.encapsulated || all.length === 1) return this.frames(res, instance, all, accept);
      // Native pixel data: one value, every frame in order (byte-aligned, little endian unless asked as stored).
      const offers = frameOffers(file.image);
      const choice = chooseFrameOffer(accept, offers, true);
      if (!choice) throw new HttpError(406, `pixel data is available as ${describeOffers(offers)}`);
      const parts = [];
      for (const n of all) parts.push(await this.frameBytes(file, n, [], choice.offer));
      return send(res, choice.multipart, `${choice.offer.mediaType}; transfer-syntax=${choice.offer.transferSyntaxUid}`, Buffer.concat(parts));
    }
    const element = bulkElement(await this.source.head(file), path, await this.dictionary());
    if (!element) throw new HttpError(404, `no bulk data at ${path.join('/').slice(0, 200)}`);
    const choice = chooseFrameOffer(accept, [{ transferSyntaxUid: '1.2.840.10008.1.2.1', mediaType: 'application/octet-stream' }], true);
    if (!choice) throw new HttpError(406, 'bulk data is available as multipart/related; type="application/octet-stream"');
    return send(res, choice.multipart, 'application/octet-stream', littleEndian(element.bytes, element.vr, file.image.bigEndian));
  }
}

/** One body: bare with its Content-Type, or as the one part of a multipart/related answer. */
function send(res: ServerResponse, multipart: boolean, type: string, bytes: Uint8Array): void {
  if (!multipart) {
    res.writeHead(200, { 'content-type': type, 'content-length': bytes.length });
    res.end(bytes);
    return;
  }
  MultipartWriter.single(res, type.split(';')[0]!, type, bytes);
}
