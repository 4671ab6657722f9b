// A minimal DICOM Part 10 writer, explicit VR little endian (native or encapsulated pixel data): enough to write the built-in
// sample without depending on a DICOM toolkit. Values are validated against their VR so a wrong
// call fails here, loudly, rather than producing a file other readers reject.
import { createHash } from 'node:crypto';

export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
export const IMPLEMENTATION_CLASS_UID = uidFromName('dicomstream implementation class');
export const IMPLEMENTATION_VERSION_NAME = 'DICOMSTREAM_01';

export type VR =
  | 'AE' | 'AS' | 'AT' | 'CS' | 'DA' | 'DS' | 'DT' | 'FD' | 'FL' | 'IS' | 'LO' | 'LT' | 'OB' | 'OF'
  | 'OW' | 'PN' | 'SH' | 'SL' | 'SQ' | 'SS' | 'ST' | 'TM' | 'UI' | 'UL' | 'UN' | 'US' | 'UT';

/**
 * One element. Values by VR:
 * - text VRs: a string (backslash separates values); DS and IS also take numbers;
 * - US, SS, UL, SL, FL, FD, AT: a number or number[] (AT: the tag as 0xGGGGEEEE);
 * - OB, OW, OF, UN: the bytes, little endian;
 * - SQ: the items, each a list of elements.
 */
export interface DicomElement {
  tag: number;
  vr: VR;
  value: string | number | number[] | Uint8Array | DicomElement[][] | Encapsulated;
}

/** Encapsulated Pixel Data (OB, undefined length), Basic Offset Table filled. */
export interface Encapsulated {
  frames: Uint8Array[];
  /** Fragments of each frame (its bytes cut in about equal parts); default 1. */
  fragmentsPerFrame?: number;
}

const isEncapsulated = (v: DicomElement['value']): v is Encapsulated =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

// VRs whose explicit-VR header has 2 reserved bytes and a 4-byte length.
const LONG_VRS = new Set<VR>(['OB', 'OF', 'OW', 'SQ', 'UN', 'UT']);
const BINARY_VRS = new Set<VR>(['OB', 'OF', 'OW', 'UN']);
const NUMBER_SIZES: Partial<Record<VR, number>> = { US: 2, SS: 2, UL: 4, SL: 4, FL: 4, FD: 8, AT: 4 };
const ITEM = 0xfffee000;

/**
 * A DICOM UID under the 2.25 root (ITU-T X.667): a name-based (SHA-1, version 5) UUID written as
 * one decimal integer. The same name always gives the same UID, so regenerating the sample
 * produces the same instances rather than duplicates.
 */
export function uidFromName(name: string): string {
  const hash = createHash('sha1').update('dicomstream:').update(name).digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50; // version 5
  hash[8] = (hash[8]! & 0x3f) | 0x80; // RFC 4122 variant
  return `2.25.${BigInt('0x' + hash.subarray(0, 16).toString('hex')).toString(10)}`;
}

/** 16-bit values as little-endian bytes (OW), whatever the host's byte order. */
export function uint16Bytes(values: Uint16Array | number[]): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setUint16(i * 2, values[i]!, true);
  return out;
}

/** A decimal string of at most 16 characters, as DS requires. */
export function decimalString(x: number): string {
  if (!Number.isFinite(x)) throw new RangeError(`DS cannot hold ${x}`);
  for (let digits = 10; digits >= 0; digits--) {
    const s = String(Number(x.toFixed(digits)));
    if (s.length <= 16) return s;
  }
  const s = x.toExponential(8);
  if (s.length > 16) throw new RangeError(`DS cannot hold ${x} in 16 characters`);
  return s;
}

function describeTag(tag: number): string {
  const hex = tag.toString(16).padStart(8, '0').toUpperCase();
  return `(${hex.slice(0, 4)},${hex.slice(4)})`;
}

function textBytes(e: DicomElement): Uint8Array {
  let s: string;
  if (typeof e.value === 'string') s = e.value;
  else if (typeof e.value === 'number' || Array.isArray(e.value) && e.value.every((v) => typeof v === 'number')) {
    if (e.vr !== 'DS' && e.vr !== 'IS') throw new TypeError(`${describeTag(e.tag)} ${e.vr}: expected a string`);
    const values = typeof e.value === 'number' ? [e.value] : (e.value as number[]);
    s = values.map((v) => (e.vr === 'DS' ? decimalString(v) : String(Math.trunc(v)))).join('\\');
  } else throw new TypeError(`${describeTag(e.tag)} ${e.vr}: expected a string`);
  // No Specific Character Set is written, so only the default repertoire (ASCII) is allowed.
  if (!/^[\x00-\x7f]*$/.test(s)) throw new RangeError(`${describeTag(e.tag)}: non-ASCII text needs a Specific Character Set`);
  const padded = s.length % 2 ? s + (e.vr === 'UI' ? '\0' : ' ') : s;
  return new Uint8Array(Buffer.from(padded, 'latin1'));
}

function numberBytes(e: DicomElement, size: number): Uint8Array {
  const values = typeof e.value === 'number' ? [e.value] : e.value;
  if (!Array.isArray(values) || !values.every((v) => typeof v === 'number')) {
    throw new TypeError(`${describeTag(e.tag)} ${e.vr}: expected a number or number[]`);
  }
  const out = new Uint8Array(values.length * size);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => {
    const at = i * size;
    switch (e.vr) {
      case 'US': view.setUint16(at, v, true); break;
      case 'SS': view.setInt16(at, v, true); break;
      case 'UL': view.setUint32(at, v, true); break;
      case 'SL': view.setInt32(at, v, true); break;
      case 'FL': view.setFloat32(at, v, true); break;
      case 'FD': view.setFloat64(at, v, true); break;
      case 'AT': view.setUint16(at, v >>> 16, true); view.setUint16(at + 2, v & 0xffff, true); break;
      default: throw new TypeError(`${e.vr} is not numeric`);
    }
  });
  return out;
}

function binaryBytes(e: DicomElement): Uint8Array {
  if (!(e.value instanceof Uint8Array)) throw new TypeError(`${describeTag(e.tag)} ${e.vr}: expected a Uint8Array`);
  if (e.vr === 'OW' && e.value.length % 2) throw new RangeError(`${describeTag(e.tag)} OW: odd byte count`);
  if (e.vr === 'OF' && e.value.length % 4) throw new RangeError(`${describeTag(e.tag)} OF: byte count not a multiple of 4`);
  if (e.value.length % 2 === 0) return e.value;
  const padded = new Uint8Array(e.value.length + 1); // the extra byte is 0
  padded.set(e.value);
  return padded;
}

/** Appends the encoded elements to `out`, in tag order, and returns their byte count. */
function encodeDataSet(elements: DicomElement[], out: Uint8Array[]): number {
  const sorted = [...elements].sort((a, b) => a.tag - b.tag);
  let total = 0;
  for (let i = 0; i < sorted.length; i++) {
    if (i > 0 && sorted[i]!.tag === sorted[i - 1]!.tag) throw new RangeError(`${describeTag(sorted[i]!.tag)} given twice`);
    total += encodeElement(sorted[i]!, out);
  }
  return total;
}

function header(tag: number, vr: VR, length: number): Uint8Array {
  const long = LONG_VRS.has(vr);
  if (!long && length > 0xffff) throw new RangeError(`${describeTag(tag)} ${vr}: ${length} bytes do not fit a 2-byte length`);
  const out = new Uint8Array(long ? 12 : 8);
  const view = new DataView(out.buffer);
  view.setUint16(0, tag >>> 16, true);
  view.setUint16(2, tag & 0xffff, true);
  out[4] = vr.charCodeAt(0);
  out[5] = vr.charCodeAt(1);
  if (long) view.setUint32(8, length, true); // bytes 6–7 are reserved, 0
  else view.setUint16(6, length, true);
  return out;
}

function item(tag: number, length: number): Uint8Array {
  const h = new Uint8Array(8);
  const view = new DataView(h.buffer);
  view.setUint16(0, tag >>> 16, true);
  view.setUint16(2, tag & 0xffff, true);
  view.setUint32(4, length, true);
  return h;
}

/** A frame's bytes cut in `n` fragments of even length (the last padded if odd). */
function fragmentsOf(frame: Uint8Array, n: number): Uint8Array[] {
  const padded = frame.length % 2 ? Uint8Array.from([...frame, 0]) : frame;
  const step = Math.max(2, Math.ceil(padded.length / n / 2) * 2);
  const out: Uint8Array[] = [];
  for (let at = 0; at < padded.length || out.length === 0; at += step) out.push(padded.subarray(at, at + step));
  return out;
}

/** Pixel Data as a sequence of items: the offset table (frame starts), each frame's fragments, the delimiter. */
function encodeEncapsulated(e: DicomElement, value: Encapsulated, out: Uint8Array[]): number {
  if (e.tag !== 0x7fe00010 || e.vr !== 'OB') throw new TypeError(`${describeTag(e.tag)}: only Pixel Data (OB) can be encapsulated`);
  const frames = value.frames.map((f) => fragmentsOf(f, value.fragmentsPerFrame ?? 1));
  const offsets = new Uint8Array(4 * frames.length);
  let at = 0;
  frames.forEach((fragments, i) => {
    new DataView(offsets.buffer).setUint32(4 * i, at, true);
    for (const f of fragments) at += 8 + f.length;
  });
  const parts = [header(e.tag, 'OB', 0xffffffff), item(ITEM, offsets.length), offsets];
  for (const f of frames.flat()) parts.push(item(ITEM, f.length), f);
  parts.push(item(0xfffee0dd, 0));
  out.push(...parts);
  return parts.reduce((n, p) => n + p.length, 0);
}

function encodeElement(e: DicomElement, out: Uint8Array[]): number {
  if (!Number.isInteger(e.tag) || e.tag < 0 || e.tag > 0xffffffff) throw new RangeError(`bad tag ${e.tag}`);
  if (isEncapsulated(e.value)) return encodeEncapsulated(e, e.value, out);
  if (e.vr === 'SQ') {
    if (!Array.isArray(e.value) || !e.value.every((item) => Array.isArray(item))) {
      throw new TypeError(`${describeTag(e.tag)} SQ: expected items (DicomElement[][])`);
    }
    // Defined lengths throughout: encode the items first, then the header that counts them.
    const at = out.push(new Uint8Array(0)) - 1;
    let length = 0;
    for (const item of e.value as DicomElement[][]) {
      const itemAt = out.push(new Uint8Array(0)) - 1;
      const itemLength = encodeDataSet(item, out);
      const itemHeader = new Uint8Array(8);
      const view = new DataView(itemHeader.buffer);
      view.setUint16(0, ITEM >>> 16, true);
      view.setUint16(2, ITEM & 0xffff, true);
      view.setUint32(4, itemLength, true);
      out[itemAt] = itemHeader;
      length += 8 + itemLength;
    }
    out[at] = header(e.tag, 'SQ', length);
    return out[at]!.length + length;
  }
  const size = NUMBER_SIZES[e.vr];
  const value = size ? numberBytes(e, size) : BINARY_VRS.has(e.vr) ? binaryBytes(e) : textBytes(e);
  const h = header(e.tag, e.vr, value.length);
  out.push(h, value);
  return h.length + value.length;
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function stringValue(elements: DicomElement[], tag: number): string {
  const v = elements.find((e) => e.tag === tag)?.value;
  if (typeof v !== 'string' || !v) throw new RangeError(`the data set needs ${describeTag(tag)} for the file meta`);
  return v;
}

/**
 * A Part 10 file: preamble, "DICM", the File Meta group, then `elements` (the data set, any order,
 * group 0002 excluded) in explicit VR little endian. `transferSyntaxUid` names the syntax of
 * encapsulated Pixel Data (a compressed syntax); the data set itself is always explicit VR little
 * endian, as every such syntax requires. The media storage SOP class and instance
 * come from the data set's SOP Class UID (0008,0016) and SOP Instance UID (0008,0018).
 */
export function writeDicom(elements: DicomElement[], transferSyntaxUid = EXPLICIT_VR_LITTLE_ENDIAN): Uint8Array {
  if (elements.some((e) => e.tag >>> 16 === 0x0002)) throw new RangeError('group 0002 is written by writeDicom itself');
  const metaElements: DicomElement[] = [
    { tag: 0x00020001, vr: 'OB', value: new Uint8Array([0, 1]) },
    { tag: 0x00020002, vr: 'UI', value: stringValue(elements, 0x00080016) },
    { tag: 0x00020003, vr: 'UI', value: stringValue(elements, 0x00080018) },
    { tag: 0x00020010, vr: 'UI', value: transferSyntaxUid },
    { tag: 0x00020012, vr: 'UI', value: IMPLEMENTATION_CLASS_UID },
    { tag: 0x00020013, vr: 'SH', value: IMPLEMENTATION_VERSION_NAME },
  ];
  const parts: Uint8Array[] = [new Uint8Array(128), new Uint8Array([0x44, 0x49, 0x43, 0x4d])];
  const groupLengthAt = parts.push(new Uint8Array(0)) - 1;
  const metaLength = encodeDataSet(metaElements, parts);
  const groupLength: Uint8Array[] = [];
  const groupLengthBytes = encodeElement({ tag: 0x00020000, vr: 'UL', value: metaLength }, groupLength);
  parts[groupLengthAt] = concat(groupLength, groupLengthBytes);
  const bodyLength = encodeDataSet(elements, parts);
  return concat(parts, 132 + groupLengthBytes + metaLength + bodyLength);
}
