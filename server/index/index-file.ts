// Indexes one DICOM file: its identity, image attributes and where each frame's bytes lie,
// reading only the head of the file (and the item headers of encapsulated pixel data).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { ImageAttributes } from '../../shared/protocol.js';
import { transferSyntax, VIDEO_TRANSFER_SYNTAXES } from '../../shared/transfer-syntax.js';
import { imageFacts, seriesFacts, studyFacts, text, type SeriesFacts, type StudyFacts } from './attributes.js';
import { codestreamSize } from './codestream-size.js';
import { encapsulatedFrames, nativeFrames, type ByteSource, type FrameLocation } from './frame-table.js';
import { IndexError } from './index-error.js';
import { NeedMoreBytes, readDataSet, type ParsedHead } from './read-dataset.js';

export interface IndexedFile {
  path: string;
  size: number;
  mtimeMs: number;
  /** An object in a store: its ETag (reads ask for that version only). */
  etag?: string;
  study: StudyFacts;
  series: SeriesFacts;
  image: ImageAttributes;
  frames: FrameLocation[];
  /** Frames are ranges of the file, or of its inflated data set (deflated files). */
  source: 'file' | 'inflated';
  warnings: string[];
  /** The first frame's codestream header declares another image size: a damaged encapsulation (a copy without it is served). */
  codestreamMismatch?: boolean;
}

const FIRST_READ = 256 * 1024;
/**
 * Frames one file may have: more than any modality writes (whole-slide levels reach a few hundred
 * thousand tiles). It bounds the index of one file (~130 bytes a frame): without it, a 1 MiB file of
 * 1-bit 1×1 frames made 8 million frame entries (1 GiB of memory).
 */
const MAX_FRAMES = 1_000_000;

/** A source reading `length` bytes at `offset` with `readAt` until done or the end of the file. */
function positionalSource(size: number, readAt: (buffer: Buffer, at: number, length: number, position: number) => number | Promise<number>): ByteSource {
  return {
    size,
    async read(offset, length) {
      const buffer = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const n = await readAt(buffer, done, length - done, offset + done);
        if (n === 0) break;
        done += n;
      }
      return done === length ? buffer : buffer.subarray(0, done);
    },
  };
}

export function handleSource(handle: FileHandle, size: number): ByteSource {
  return positionalSource(size, async (buffer, at, length, position) => (await handle.read(buffer, at, length, position)).bytesRead);
}

export function memorySource(bytes: Uint8Array): ByteSource {
  return { size: bytes.length, read: async (offset, length) => bytes.subarray(offset, offset + length) };
}

/** Reads with blocking calls: for a parser thread of its own, where it saves the thread pool's round trips. */
function syncSource(fd: number, size: number): ByteSource {
  return positionalSource(size, (buffer, at, length, position) => readSync(fd, buffer, at, length, position));
}

interface OpenedFile { source: ByteSource; mtimeMs: number; close(): Promise<void> | void }

async function openFile(path: string, blocking: boolean): Promise<OpenedFile> {
  if (blocking) {
    const fd = openSync(path, 'r');
    try {
      const stat = fstatSync(fd);
      return { source: syncSource(fd, stat.size), mtimeMs: stat.mtimeMs, close: () => closeSync(fd) };
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }
  const handle: FileHandle = await open(path, 'r');
  try {
    const stat = await handle.stat();
    return { source: handleSource(handle, stat.size), mtimeMs: stat.mtimeMs, close: () => handle.close() };
  } catch (e) {
    await handle.close();
    throw e;
  }
}

/**
 * Indexes one file. `blocking`: use blocking reads (only on a thread of its own, such as a parser
 * worker: they skip the thread pool that all of a process's asynchronous file calls share).
 */
export async function indexFile(path: string, options: { blocking?: boolean } = {}): Promise<IndexedFile> {
  let opened: OpenedFile;
  try {
    opened = await openFile(path, options.blocking ?? false);
  } catch (e) {
    throw new IndexError('UNREADABLE', `cannot open: ${(e as Error).message}`);
  }
  try {
    return await indexSource(path, opened.source, opened.mtimeMs);
  } finally {
    await opened.close();
  }
}

/** Indexes a file held in memory (tools, the fuzz tests): the same parse as indexFile. */
export function indexBytes(bytes: Uint8Array, name = 'memory', mtimeMs = 0): Promise<IndexedFile> {
  return indexSource(name, memorySource(bytes), mtimeMs);
}

/**
 * The data set before Pixel Data, read from the start of the file in growing pieces (the whole
 * file if it is deflated): `firstRead` bytes, then four times more until the head is whole.
 */
export async function readHead(file: ByteSource, firstRead = FIRST_READ): Promise<ParsedHead> {
  for (let length = Math.min(firstRead, file.size); ; length = Math.min(length * 4, file.size)) {
    const bytes = await file.read(0, length);
    if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) throw new IndexError('GZIP', 'gzip-compressed file: gunzip it to serve it');
    try {
      return readDataSet(bytes, length >= file.size);
    } catch (e) {
      if (!(e instanceof NeedMoreBytes) || length >= file.size) throw e;
    }
  }
}

/** Indexes a file read through `file` (an object in a store, say); rejects only with an IndexError. */
export function indexByteSource(path: string, file: ByteSource, mtimeMs: number): Promise<IndexedFile> {
  return indexSource(path, file, mtimeMs);
}

/** Rejects only with an IndexError (its code says why the file is not served). */
async function indexSource(path: string, file: ByteSource, mtimeMs: number): Promise<IndexedFile> {
  try {
    const head = await readHead(file);
    const source = head.inflated ? memorySource(head.bytes) : file;
    return await describeFile(path, file.size, mtimeMs, head, source);
  } catch (e) {
    if (e instanceof IndexError) throw e;
    throw new IndexError('CORRUPT', (e as Error)?.message ?? String(e));
  }
}

async function describeFile(path: string, size: number, mtimeMs: number, head: ParsedHead, source: ByteSource): Promise<IndexedFile> {
  const { dataSet: ds, pixelData, transferSyntaxUid, warnings } = head;
  if (!pixelData) throw new IndexError('NO_PIXEL_DATA', 'no Pixel Data');
  // Frames are addressed by SOP Instance UID: an image without one cannot be asked for.
  if (!text(ds, 'x00080018')) throw new IndexError('NO_UID', 'image without a SOP Instance UID: it cannot be addressed');
  const ts = transferSyntax(transferSyntaxUid);
  if (VIDEO_TRANSFER_SYNTAXES.has(transferSyntaxUid)) throw new IndexError('UNSUPPORTED', `${ts?.name ?? transferSyntaxUid}: video is not served frame by frame`);
  const undefinedLength = pixelData.length === 0xffffffff;
  const encapsulated = undefinedLength;
  if (ts && ts.encapsulated !== encapsulated) {
    warnings.push(encapsulated ? `encapsulated Pixel Data in ${ts.name}` : `native Pixel Data in ${ts.name}: served as native`);
  }
  const { attributes: image, invalidNumberOfFrames } = imageFacts(ds, transferSyntaxUid, {
    bigEndian: ts?.bigEndian ?? false, encapsulated, inflated: head.inflated,
  });
  if (invalidNumberOfFrames !== undefined) warnings.push(`Number of Frames "${invalidNumberOfFrames}" is not a positive integer: 1 frame`);
  if (!image.rows || !image.columns) throw new IndexError('NOT_AN_IMAGE', 'Pixel Data without Rows and Columns');
  if (image.numberOfFrames > MAX_FRAMES) throw new IndexError('UNSUPPORTED', `Number of Frames ${image.numberOfFrames}: over the ${MAX_FRAMES} served per file`);
  let frames: FrameLocation[];
  if (encapsulated) {
    frames = await encapsulatedFrames(source, pixelData.dataOffset, image.numberOfFrames, extendedOffsetTable(head), warnings);
  } else {
    frames = nativeFrames(image, pixelData.dataOffset, pixelData.length, source.size, warnings);
  }
  for (const f of frames) if (f.length > 0xffffffff) throw new IndexError('UNSUPPORTED', 'a frame over 4 GiB');
  const codestreamMismatch = encapsulated && await firstFrameMismatch(head.bytes, source, frames[0], image, warnings);
  const study = studyFacts(ds);
  const series = seriesFacts(ds);
  if (!study.studyInstanceUid || !series.seriesInstanceUid) warnings.push('no Study or Series Instance UID: grouped under an empty UID');
  const described: IndexedFile = { path, size, mtimeMs, study, series, image, frames, source: head.inflated ? 'inflated' : 'file', warnings };
  if (codestreamMismatch) described.codestreamMismatch = true;
  return described;
}

/** Whether the first frame's codestream declares another size than Rows × Columns (said in a warning). */
async function firstFrameMismatch(
  headBytes: Uint8Array, source: ByteSource, first: FrameLocation | undefined, image: ImageAttributes, warnings: string[],
): Promise<boolean> {
  if (!first || first.segments.length < 2) return false;
  const [offset, length] = [first.segments[0]!, Math.min(first.segments[1]!, 1024)];
  // The head read at the start usually holds the first fragment already: no second read then.
  const start = offset + length <= headBytes.length ? headBytes.subarray(offset, offset + length) : await source.read(offset, length);
  const size = codestreamSize(start);
  // 0 rows: the height comes later (a DNL marker); nothing to compare.
  if (!size || size.rows === 0 || (size.columns === image.columns && size.rows === image.rows)) return false;
  warnings.push(`the first frame's codestream says ${size.columns} × ${size.rows}, the image is ${image.columns} × ${image.rows}: damaged pixel data`);
  return true;
}

/** Extended Offset Table (7FE0,0001), 64-bit item offsets, if present and readable. */
function extendedOffsetTable(head: ParsedHead): number[] | undefined {
  const e = head.dataSet.elements.x7fe00001;
  if (!e || e.length % 8 !== 0 || e.dataOffset + e.length > head.bytes.length) return undefined;
  const v = new DataView(head.bytes.buffer, head.bytes.byteOffset + e.dataOffset, e.length);
  return Array.from({ length: e.length / 8 }, (_, i) => Number(v.getBigUint64(i * 8, true)));
}
