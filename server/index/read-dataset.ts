// Parses the head of a DICOM file (everything before the Pixel Data value) with dicom-parser,
// without reading the pixel data. Tolerates what archives hold: no preamble, no file meta,
// a body in implicit VR although the meta says explicit, deflated data sets.
import { inflateRawSync } from 'node:zlib';
import dicomParser, { type DataSet, type Element, type ByteStream } from 'dicom-parser';
import {
  DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
} from '../../shared/transfer-syntax.js';
import { IndexError } from './index-error.js';

const PIXEL_DATA = 'x7fe00010';
const VRS = new Set(['AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW',
  'PN', 'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV']);

export interface ParsedHead {
  dataSet: DataSet;
  /** The transfer syntax the data set was actually read with (as written in the meta where there is one). */
  transferSyntaxUid: string;
  /** The top-level Pixel Data element (offsets into `bytes`), if the file has one. */
  pixelData: Element | undefined;
  /** The bytes the offsets refer to: the file's head, or the whole inflated file. */
  bytes: Uint8Array;
  inflated: boolean;
  warnings: string[];
}

// dicom-parser's explicit VR readers push warnings to `dataSet.warnings` (a sequence cut off by the
// end of the data), but the data sets it makes for defined-length sequence items have no such
// array: a file ending inside an item nested in one made that push a TypeError. While one of our
// parses runs (synchronously: nothing else runs meanwhile), every DataSet gets its own array on
// first use; the prototype is restored after it, so other users of dicom-parser never see this.
const dataSetPrototype = (dicomParser as unknown as { DataSet: { prototype: object } }).DataSet.prototype;
const ownWarnings = (target: object, value: unknown) => Object.defineProperty(target, 'warnings', { value, writable: true, configurable: true, enumerable: true });
const itemWarnings: PropertyDescriptor = {
  configurable: true,
  get(this: object) { const warnings: string[] = []; ownWarnings(this, warnings); return warnings; },
  set(this: object, value: unknown) { ownWarnings(this, value); },
};

function withItemWarnings<T>(parse: () => T): T {
  if (Object.getOwnPropertyDescriptor(dataSetPrototype, 'warnings')) return parse(); // a parse inside a parse
  Object.defineProperty(dataSetPrototype, 'warnings', itemWarnings);
  try {
    return parse();
  } finally {
    delete (dataSetPrototype as { warnings?: unknown }).warnings;
  }
}

/**
 * The largest inflated data set of a deflated file. Deflate expands up to 1032 times: without a
 * bound, a 510 KiB file inflated to 512 MiB and was copied once more (2 GiB of memory).
 */
const MAX_INFLATED_BYTES = 256 * 1024 * 1024;

/** Thrown when the head is cut short: read more of the file and parse again. */
export class NeedMoreBytes extends Error {}

const explicitVrAt = (bytes: Uint8Array, pos: number): boolean =>
  pos + 6 <= bytes.length && VRS.has(String.fromCharCode(bytes[pos + 4]!, bytes[pos + 5]!));

function describe(e: unknown): string {
  if (typeof e === 'string') return e;
  // dicom-parser calls its warnings array (`byteStream.warnings(...)`) on an item delimiter with a
  // non-zero length: say what it met, not the TypeError.
  if (e instanceof TypeError && /\.warnings is not a function/.test(e.message)) return 'item delimiter with a non-zero length';
  // dicom-parser reads nested sequences by recursion: thousands of levels overflow the stack.
  if (e instanceof RangeError && /call stack/i.test(e.message)) return 'sequences nested too deeply to read';
  if (e && typeof e === 'object' && 'exception' in e) return describe((e as { exception: unknown }).exception);
  return e instanceof Error ? e.message : String(e);
}

/**
 * @param bytes the first bytes of the file (or all of it)
 * @param whole whether `bytes` is the whole file
 */
export function readDataSet(bytes: Uint8Array, whole: boolean): ParsedHead {
  const warnings: string[] = [];
  let position = 0;
  let written: string | undefined;
  let meta: DataSet | undefined;
  if (bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d) {
    try {
      meta = dicomParser.readPart10Header(bytes);
      // Inside the try: a Transfer Syntax UID whose length runs past the data throws (a string).
      written = meta.string('x00020010')?.replace(/\0/g, '').trim() || undefined;
    } catch (e) {
      if (!whole) throw new NeedMoreBytes();
      throw new IndexError('NOT_DICOM', `unreadable file meta: ${describe(e)}`);
    }
    position = (meta as DataSet & { position: number }).position;
    if (!written) warnings.push('file meta has no Transfer Syntax UID: guessed from the data set');
  } else {
    // No preamble: a bare data set. Accept it only if it starts like one (an early group tag).
    if (bytes.length < 8) throw new IndexError('NOT_DICOM', 'not a DICOM file: too short');
    const group = bytes[0]! | (bytes[1]! << 8);
    if (group > 0x0008 || group % 2 !== 0) throw new IndexError('NOT_DICOM', 'not a DICOM file: no DICM prefix and no data set at the start');
    warnings.push('no preamble/DICM prefix: read as a bare data set');
  }

  if (written === DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN) {
    if (!whole) throw new NeedMoreBytes();
    let inflated: Uint8Array;
    try {
      inflated = inflateRawSync(bytes.subarray(position), { maxOutputLength: MAX_INFLATED_BYTES });
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new IndexError('UNSUPPORTED', `deflated data set inflates to over ${MAX_INFLATED_BYTES / 2 ** 20} MiB`);
      }
      throw new IndexError('CORRUPT', `deflated data set does not inflate: ${describe(e)}`);
    }
    const full = new Uint8Array(position + inflated.length);
    full.set(bytes.subarray(0, position));
    full.set(inflated, position);
    const parsed = parseBody(full, position, EXPLICIT_VR_LITTLE_ENDIAN, true, warnings);
    return { ...parsed, transferSyntaxUid: written, bytes: full, inflated: true, warnings };
  }

  // Trust the bytes over the meta for the VR encoding: some writers say explicit and write implicit.
  const bigEndian = written === EXPLICIT_VR_BIG_ENDIAN;
  const explicitBody = explicitVrAt(bytes, position);
  let readAs = written ?? (explicitBody ? EXPLICIT_VR_LITTLE_ENDIAN : IMPLICIT_VR_LITTLE_ENDIAN);
  if (written && !bigEndian) {
    if (written === IMPLICIT_VR_LITTLE_ENDIAN && explicitBody) {
      readAs = EXPLICIT_VR_LITTLE_ENDIAN;
      warnings.push('transfer syntax says implicit VR, the data set is explicit VR: read as explicit');
    } else if (written !== IMPLICIT_VR_LITTLE_ENDIAN && !explicitBody && bytes.length > position + 6) {
      readAs = IMPLICIT_VR_LITTLE_ENDIAN;
      warnings.push('transfer syntax says explicit VR, the data set is implicit VR: read as implicit');
    }
  }
  const parsed = parseBody(bytes, position, readAs, whole, warnings);
  return { ...parsed, transferSyntaxUid: written ?? readAs, bytes, inflated: false, warnings };
}

function parseBody(bytes: Uint8Array, position: number, readAs: string, whole: boolean, warnings: string[]): { dataSet: DataSet; pixelData: Element | undefined } {
  const parser = readAs === EXPLICIT_VR_BIG_ENDIAN ? dicomParser.bigEndianByteArrayParser : dicomParser.littleEndianByteArrayParser;
  const elements: Record<string, Element> = {};
  const Ctor = (dicomParser as unknown as { DataSet: new (p: unknown, b: Uint8Array, e: Record<string, Element>) => DataSet }).DataSet;
  const dataSet = new Ctor(parser, bytes, elements);
  // The reader's warnings about the top-level data set are the file's (see dataSetPrototype).
  (dataSet as DataSet & { warnings: string[] }).warnings = [];
  if (position >= bytes.length) {
    if (!whole) throw new NeedMoreBytes();
    throw new IndexError('NO_PIXEL_DATA', 'no data set after the file meta');
  }
  const stream = new (dicomParser as unknown as { ByteStream: new (p: unknown, b: Uint8Array, pos: number) => ByteStream }).ByteStream(parser, bytes, position);
  try {
    withItemWarnings(() => {
      if (readAs === IMPLICIT_VR_LITTLE_ENDIAN) dicomParser.parseDicomDataSetImplicit(dataSet, stream, bytes.length, { untilTag: PIXEL_DATA });
      else dicomParser.parseDicomDataSetExplicit(dataSet, stream, bytes.length, { untilTag: PIXEL_DATA });
    });
  } catch (e) {
    if (!whole) throw new NeedMoreBytes();
    // Keep what was read before the damage: the pixel data may still be intact before it.
    if (!elements[PIXEL_DATA]) throw new IndexError('CORRUPT', `data set does not parse: ${describe(e)}`);
    warnings.push(`data set damaged after Pixel Data: ${describe(e)}`);
  }
  const pixelData = elements[PIXEL_DATA];
  if (!pixelData && !whole) throw new NeedMoreBytes();
  for (const w of (dataSet as DataSet & { warnings?: string[] }).warnings ?? []) warnings.push(w);
  return { dataSet, pixelData };
}
