// WADO-RS metadata: a file's data set (everything before Pixel Data, as read by the index's own
// reader) in the DICOM JSON model. Text by its Specific Character Set, numbers in the file's byte
// order, the VR from the file or, in implicit VR, from the data dictionary; binary values over a
// few hundred bytes and Pixel Data as BulkDataURIs that the bulkdata route answers.
import type { DataSet, Element } from 'dicom-parser';
import type { ParsedHead } from '../index/read-dataset.js';
import { characterSetOf, decodeText } from '../index/character-set.js';
import type { Dictionary } from './dictionary.js';
import { swappedSamples } from './native-frame.js';
import { sortedDataSet, tagKey, textElement, type DicomJsonDataSet, type DicomJsonElement } from './dicom-json.js';

/** Binary values up to this size are written inline (base64), larger ones as a BulkDataURI. */
export const INLINE_BINARY_MAX = 256;
const PIXEL_DATA = 0x7fe00010;
const TRANSFER_SYNTAX_UID = 0x00020010;
const BINARY = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);
/** Bytes per word of the binary VRs whose byte order follows the transfer syntax. */
const WORD = new Map([['OW', 2], ['OF', 4], ['OL', 4], ['OD', 8], ['OV', 8]]);

interface Walk {
  dictionary: Dictionary;
  bigEndian: boolean;
  /** `…/instances/{uid}`: bulk data URIs are `${instanceUrl}/bulkdata/${path}`. */
  instanceUrl: string;
}

/** The DICOM JSON of a file's data set, with its Transfer Syntax UID (0002,0010). */
export function instanceMetadata(head: ParsedHead, instanceUrl: string, dictionary: Dictionary, bigEndian: boolean): DicomJsonDataSet {
  const walk: Walk = { dictionary, bigEndian, instanceUrl };
  const ds = dataSetJson(head.dataSet, characterSetOf(head.dataSet), [], walk);
  ds[tagKey(TRANSFER_SYNTAX_UID)] = { vr: 'UI', Value: [head.transferSyntaxUid] };
  return sortedDataSet(ds);
}

/** The tag of a dicom-parser key ('x7fe00010'). */
const tagOf = (key: string) => parseInt(key.slice(1), 16) >>> 0;

function dataSetJson(ds: DataSet, inherited: string, path: string[], walk: Walk): DicomJsonDataSet {
  const characterSet = ds.elements['x00080005'] ? characterSetOf(ds) : inherited;
  const out: DicomJsonDataSet = {};
  for (const [key, element] of Object.entries(ds.elements)) {
    const tag = tagOf(key);
    const group = tag >>> 16;
    // The file meta is not part of the data set (its Transfer Syntax UID is added at the top);
    // group lengths are retired (PS3.5 7.2).
    if (group === 0x0002 || group === 0xfffe || (tag & 0xffff) === 0) continue;
    out[tagKey(tag)] = elementJson(ds, element, tag, characterSet, [...path, tagKey(tag)], walk);
  }
  return out;
}

function vrOf(element: Element, tag: number, walk: Walk): string {
  if (element.vr) return element.vr;
  if (element.items) return 'SQ';
  return walk.dictionary.vr(tag) ?? 'UN';
}

function elementJson(ds: DataSet, element: Element, tag: number, characterSet: string, path: string[], walk: Walk): DicomJsonElement {
  const vr = vrOf(element, tag, walk);
  if (element.items) {
    const items = element.items.map((item, i) => sortedDataSet(dataSetJson(item.dataSet!, characterSet, [...path, String(i)], walk)));
    return items.length ? { vr: 'SQ', Value: items } : { vr: 'SQ' };
  }
  if (tag === PIXEL_DATA && path.length === 1) return { vr: vr === 'UN' ? 'OW' : vr, BulkDataURI: bulkDataUri(path, walk) };
  const length = element.length === 0xffffffff ? 0 : element.length;
  if (length === 0) return { vr };
  const bytes = ds.byteArray.subarray(element.dataOffset, element.dataOffset + length);
  if (BINARY.has(vr)) {
    if (length > INLINE_BINARY_MAX) return { vr, BulkDataURI: bulkDataUri(path, walk) };
    return { vr, InlineBinary: Buffer.from(littleEndian(bytes, vr, walk.bigEndian)).toString('base64') };
  }
  const numbers = binaryNumbers(bytes, vr, walk.bigEndian);
  if (numbers) return numbers.length ? { vr, Value: numbers } : { vr };
  return textElement(vr, decodeText(bytes, vr, characterSet));
}

function bulkDataUri(path: string[], walk: Walk): string {
  return `${walk.instanceUrl}/bulkdata/${path.join('/')}`;
}

/** A binary value in little-endian byte order (DICOM JSON's, PS3.18 F.2.7), swapped from a big-endian file. */
export function littleEndian(bytes: Uint8Array, vr: string, bigEndian: boolean): Uint8Array {
  const word = WORD.get(vr);
  return bigEndian && word ? swappedSamples(bytes, word) : bytes;
}

/** The values of a binary-number VR (US, SS, UL, SL, FL, FD, UV, SV, AT), or undefined for other VRs. */
function binaryNumbers(bytes: Uint8Array, vr: string, bigEndian: boolean): Array<number | string> | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = !bigEndian;
  const read = (size: number, get: (at: number) => number | string): Array<number | string> => {
    const out: Array<number | string> = [];
    for (let at = 0; at + size <= bytes.length; at += size) out.push(get(at));
    return out;
  };
  const big = (v: bigint) => (v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v.toString());
  switch (vr) {
    case 'US': return read(2, (at) => view.getUint16(at, le));
    case 'SS': return read(2, (at) => view.getInt16(at, le));
    case 'UL': return read(4, (at) => view.getUint32(at, le));
    case 'SL': return read(4, (at) => view.getInt32(at, le));
    case 'FL': return read(4, (at) => view.getFloat32(at, le));
    case 'FD': return read(8, (at) => view.getFloat64(at, le));
    case 'UV': return read(8, (at) => big(view.getBigUint64(at, le)));
    case 'SV': return read(8, (at) => big(view.getBigInt64(at, le)));
    case 'AT': return read(4, (at) => tagKey(((view.getUint16(at, le) << 16) | view.getUint16(at + 2, le)) >>> 0));
    default: return undefined;
  }
}

/** The element a bulk data path (`00282000`, `00540016/0/00181074`) names in a data set, with its VR. */
export function bulkElement(head: ParsedHead, path: string[], dictionary: Dictionary): { bytes: Uint8Array; vr: string } | undefined {
  let ds: DataSet | undefined = head.dataSet;
  for (let i = 0; ds && i < path.length; i += 2) {
    const key = `x${path[i]!.toLowerCase()}`;
    const element: Element | undefined = ds.elements[key];
    if (!element || !/^[0-9a-f]{8}$/i.test(path[i]!)) return undefined;
    if (i === path.length - 1) {
      if (element.items || element.length === 0xffffffff) return undefined;
      const vr = element.vr ?? dictionary.vr(tagOf(key)) ?? 'UN';
      return { bytes: ds.byteArray.subarray(element.dataOffset, element.dataOffset + element.length), vr };
    }
    const index = Number(path[i + 1]);
    ds = Number.isInteger(index) ? element.items?.[index]?.dataSet : undefined;
  }
  return undefined;
}
