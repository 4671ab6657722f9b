// The on-disk parser index (proto/index.proto): plain types and the framed encoding of its two
// kinds of file. A header (magic, format version, kind, length, CRC-32) makes a partial, corrupt
// or older file detectable; the generated protobufjs code stays behind this module.
import { crc32 } from 'node:zlib';
import { dicomstream } from './generated/proto.js';
import type { ImageAttributes } from './protocol.js';
import { CodedError } from './coded-error.js';

const ix = dicomstream.index.v1;

/**
 * 2: text attributes decoded by Specific Character Set (version 1 kept one code point a byte: rebuilt).
 * 3: the study and series attributes QIDO-RS answers with (birth date, sex, study ID, referring physician, series date/time).
 * 4: each image's Frame of Reference UID (Cornerstone's volumes and MPR).
 * 5: PET images' SUV inputs (ImageAttributes.pet).
 */
export const INDEX_FORMAT_VERSION = 5;
const MAGIC = 0x58495344; // "DSIX" read as a little-endian uint32
const HEADER_BYTES = 20;

export enum IndexKind { Catalogue = 1, Series = 2 }

/** A file's (or an object's) version: size and modification time; for an object, its ETag too. */
export interface FileStamp { path: string; size: number; mtimeMs: number; etag?: string }
export interface StudyFactsRecord {
  studyInstanceUid: string; patientName: string; patientId: string; studyDate: string; studyTime: string;
  studyDescription: string; accessionNumber: string; patientBirthDate: string; patientSex: string; studyId: string;
  referringPhysicianName: string;
}
export interface SeriesFactsRecord {
  seriesInstanceUid: string; modality: string; seriesDescription: string; seriesNumber: number; studyInstanceUid: string;
  seriesDate: string; seriesTime: string;
}
export interface InstanceRecord {
  file: FileStamp; sopInstanceUid: string; seriesInstanceUid: string; numberOfFrames: number;
  transferSyntaxUid: string; lossyImageCompression: boolean;
  /** The first frame's codestream declares another size than the attributes (damaged): another copy is preferred. */
  codestreamMismatch: boolean;
}
export interface SkippedRecord { file: FileStamp; code: string; reason: string }
export interface CatalogueIndex {
  studies: StudyFactsRecord[]; series: SeriesFactsRecord[]; instances: InstanceRecord[]; skipped: SkippedRecord[];
}
export interface FrameRange { segments: number[]; length: number; bitOffset: number }
export interface FileEntry { file: FileStamp; image: ImageAttributes; frames: FrameRange[]; inflated: boolean; warnings: string[]; codestreamMismatch: boolean }
export interface SeriesIndex { study: StudyFactsRecord; series: SeriesFactsRecord; files: FileEntry[] }

/** Why an index file was not trusted. */
export class IndexFileError extends CodedError<'INDEX_FILE_UNTRUSTED'> {
  constructor(message: string) {
    super('INDEX_FILE_UNTRUSTED', message);
  }
}

const objectOptions = { defaults: true, arrays: true, longs: Number, enums: Number } as const;

export function encodeCatalogueIndex(index: CatalogueIndex): Uint8Array {
  return frame(IndexKind.Catalogue, ix.CatalogueIndex.encode(index).finish());
}

export function decodeCatalogueIndex(bytes: Uint8Array): CatalogueIndex {
  const payload = unframe(bytes, IndexKind.Catalogue);
  const index = ix.CatalogueIndex.toObject(ix.CatalogueIndex.decode(payload), objectOptions) as CatalogueIndex;
  for (const r of index.instances) withoutEmptyEtag(r.file);
  for (const r of index.skipped) withoutEmptyEtag(r.file);
  return index;
}

export function encodeSeriesIndex(index: SeriesIndex): Uint8Array {
  return frame(IndexKind.Series, ix.SeriesIndex.encode(index as dicomstream.index.v1.ISeriesIndex).finish());
}

export function decodeSeriesIndex(bytes: Uint8Array): SeriesIndex {
  const payload = unframe(bytes, IndexKind.Series);
  const index = ix.SeriesIndex.toObject(ix.SeriesIndex.decode(payload), objectOptions) as SeriesIndex;
  for (const e of index.files) withoutEmptyEtag(e.file);
  return index;
}

/** Files have no ETag: the decoder's default ('') is dropped, so a stamp reads back as it was written. */
function withoutEmptyEtag(stamp: FileStamp): void {
  if (!stamp.etag) delete stamp.etag;
}

function frame(kind: IndexKind, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, INDEX_FORMAT_VERSION, true);
  view.setUint32(8, kind, true);
  view.setUint32(12, payload.length, true);
  view.setUint32(16, crc32(payload), true);
  out.set(payload, HEADER_BYTES);
  return out;
}

function unframe(bytes: Uint8Array, kind: IndexKind): Uint8Array {
  if (bytes.length < HEADER_BYTES) throw new IndexFileError(`${bytes.length} bytes: shorter than the header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw new IndexFileError('not a dicomstream index file (no DSIX magic)');
  const version = view.getUint32(4, true);
  if (version !== INDEX_FORMAT_VERSION) throw new IndexFileError(`format version ${version}; this server reads ${INDEX_FORMAT_VERSION}`);
  if (view.getUint32(8, true) !== kind) throw new IndexFileError(`kind ${view.getUint32(8, true)}, expected ${kind}`);
  const length = view.getUint32(12, true);
  if (bytes.length !== HEADER_BYTES + length) throw new IndexFileError(`${bytes.length - HEADER_BYTES} payload bytes, header says ${length}: partial file`);
  const payload = bytes.subarray(HEADER_BYTES);
  if (crc32(payload) !== view.getUint32(16, true)) throw new IndexFileError('checksum mismatch: corrupt file');
  return payload;
}
