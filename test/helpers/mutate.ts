// Seeded mutations of DICOM files for the indexer fuzz test (test/fuzz-index.test.ts). The mutator
// does not parse DICOM: it finds element headers, items and Pixel Data by scanning for tag and VR
// bytes, and damages what it finds the way broken writers, truncated copies and hostile files do.
// Every mutant is a pure function of (seed, index), so one failing mutant can be rebuilt alone.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { filesDir, manifest } from './corpus.js';
import { Rng } from './rng.js';

export { Rng };

/** The PRNG of mutant `index` under `seed`: mixed so that neighbouring indices are unrelated. */
export function mutantRng(seed: number, index: number): Rng {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return new Rng((h ^ (h >>> 16)) >>> 0);
}

const VRS = new Set(['AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW',
  'PN', 'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV']);
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/** Tags looked for in implicit VR data sets (no VR to recognise an element header by). */
const IMPLICIT_TAGS = [
  0x00080016, 0x00080018, 0x00080060, 0x0020000d, 0x0020000e, 0x00200013, 0x00280002, 0x00280004, 0x00280008,
  0x00280010, 0x00280011, 0x00280100, 0x00280101, 0x00280103, 0x00281050, 0x00281052, 0x00281053, 0x52009229,
  0x52009230, 0x00283010, 0x7fe00001, 0x7fe00010,
];

/** An element header found in a file. */
export interface ElementSite {
  at: number;
  tag: number;
  vr: string | undefined;
  littleEndian: boolean;
  lengthAt: number;
  lengthSize: 2 | 4;
  dataOffset: number;
  length: number;
}

interface Fragment { at: number; length: number }

/** Encapsulated Pixel Data as found: the offset table item, the fragment items and the delimiter. */
interface Encapsulated { bot: Fragment; fragments: Fragment[]; delimiterAt: number | undefined }

export interface Sites {
  elements: ElementSite[];
  /** The top-level Pixel Data element (the last one found). */
  pixelData: ElementSite | undefined;
  encapsulated: Encapsulated | undefined;
  items: number[];
  delimiters: number[];
  /** Where the data set after the file meta starts (0 without a meta). */
  bodyAt: number;
}

export interface CorpusFile { name: string; bytes: Uint8Array; sites: Sites }

/** Every file of the conformance corpus, with its sites found once. */
export function loadCorpus(): CorpusFile[] {
  return manifest.files.map(({ file }) => {
    const bytes = new Uint8Array(readFileSync(join(filesDir, file)));
    return { name: file, bytes, sites: findSites(bytes) };
  });
}

const u16 = (b: Uint8Array, at: number, le: boolean): number => (le ? b[at]! | (b[at + 1]! << 8) : (b[at]! << 8) | b[at + 1]!);
const u32 = (b: Uint8Array, at: number, le: boolean): number => new DataView(b.buffer, b.byteOffset + at, 4).getUint32(0, le);
const tagAt = (b: Uint8Array, at: number, le: boolean): number => ((u16(b, at, le) << 16) | u16(b, at + 2, le)) >>> 0;
const plausibleGroup = (g: number): boolean => (g >= 0x0002 && g <= 0x7fe0 && g % 2 === 0) || g === 0xfffe;

/** Finds element headers, items and Pixel Data by their bytes. */
export function findSites(bytes: Uint8Array): Sites {
  const elements: ElementSite[] = [];
  const items: number[] = [];
  const delimiters: number[] = [];
  const implicit = new Set(IMPLICIT_TAGS);
  for (let at = 0; at + 8 <= bytes.length; at++) {
    const b0 = bytes[at]!, b1 = bytes[at + 1]!, b2 = bytes[at + 2]!, b3 = bytes[at + 3]!;
    if (b0 === 0xfe && b1 === 0xff && b3 === 0xe0 && (b2 === 0x00 || b2 === 0xdd || b2 === 0x0d)) {
      (b2 === 0x00 ? items : delimiters).push(at);
      continue;
    }
    const vr = String.fromCharCode(bytes[at + 4]!, bytes[at + 5]!);
    if (VRS.has(vr)) {
      // Explicit VR: the group tells the byte order.
      const le = plausibleGroup(u16(bytes, at, true)) ? true : plausibleGroup(u16(bytes, at, false)) ? false : undefined;
      if (le === undefined) continue;
      const long = LONG_VRS.has(vr);
      if (long && at + 12 > bytes.length) continue;
      const lengthAt = at + (long ? 8 : 6);
      elements.push({
        at, tag: tagAt(bytes, at, le), vr, littleEndian: le, lengthAt, lengthSize: long ? 4 : 2,
        dataOffset: lengthAt + (long ? 4 : 2), length: long ? u32(bytes, lengthAt, le) : u16(bytes, lengthAt, le),
      });
    } else {
      const tag = tagAt(bytes, at, true);
      if (implicit.has(tag)) {
        elements.push({ at, tag, vr: undefined, littleEndian: true, lengthAt: at + 4, lengthSize: 4, dataOffset: at + 8, length: u32(bytes, at + 4, true) });
      }
    }
  }
  const pixelData = elements.filter((e) => e.tag === 0x7fe00010).at(-1);
  let encapsulated: Encapsulated | undefined;
  if (pixelData && pixelData.length === 0xffffffff && pixelData.littleEndian) {
    // Walk the items as a reader would (bounded by the file), to know the fragments.
    const walk: Fragment[] = [];
    let at = pixelData.dataOffset;
    let delimiterAt: number | undefined;
    while (at + 8 <= bytes.length) {
      const tag = tagAt(bytes, at, true);
      const length = u32(bytes, at + 4, true);
      if (tag === 0xfffee0dd) { delimiterAt = at; break; }
      if (tag !== 0xfffee000 || at + 8 + length > bytes.length) break;
      walk.push({ at, length });
      at += 8 + length;
    }
    if (walk.length > 0) encapsulated = { bot: walk[0]!, fragments: walk.slice(1), delimiterAt };
  }
  const firstBody = elements.find((e) => e.at >= 132 && e.tag >>> 16 !== 0x0002);
  const hasMeta = bytes.length >= 132 && String.fromCharCode(...bytes.subarray(128, 132)) === 'DICM';
  return { elements, pixelData, encapsulated, items, delimiters, bodyAt: hasMeta ? firstBody?.at ?? 132 : 0 };
}

export const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};

/** Replaces bytes [from, to) with `insert`. */
export const splice = (b: Uint8Array, from: number, to: number, insert: Uint8Array = new Uint8Array(0)): Uint8Array =>
  concat(b.subarray(0, from), insert, b.subarray(to));

function writeUint(b: Uint8Array, at: number, size: 2 | 4, value: number, le: boolean): void {
  if (at + size > b.length) return;
  const v = new DataView(b.buffer, b.byteOffset + at, size);
  if (size === 2) v.setUint16(0, value & 0xffff, le);
  else v.setUint32(0, value >>> 0, le);
}

/** An element header (tag, VR, length) in the encoding of `like`. */
export function header(tag: number, vr: string, length: number, encoding: { explicit: boolean; littleEndian: boolean }): Uint8Array {
  const le = encoding.littleEndian;
  const long = LONG_VRS.has(vr);
  const out = new Uint8Array(encoding.explicit ? (long ? 12 : 8) : 8);
  const v = new DataView(out.buffer);
  v.setUint16(0, tag >>> 16, le);
  v.setUint16(2, tag & 0xffff, le);
  if (!encoding.explicit) { v.setUint32(4, length >>> 0, le); return out; }
  out[4] = vr.charCodeAt(0); out[5] = vr.charCodeAt(1);
  if (long) v.setUint32(8, length >>> 0, le);
  else v.setUint16(6, length & 0xffff, le);
  return out;
}

const item = (length: number, le = true): Uint8Array => header(0xfffee000, 'UN', length, { explicit: false, littleEndian: le });
const ITEM_DELIMITER = new Uint8Array([0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0]);
const SEQUENCE_DELIMITER = new Uint8Array([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

export interface Mutant { bytes: Uint8Array; kind: MutationKind; note: string }

type Mutator = (rng: Rng, file: CorpusFile, corpus: readonly CorpusFile[]) => { bytes: Uint8Array; note: string };

const copy = (b: Uint8Array): Uint8Array => new Uint8Array(b);
/** A position, half the time in the head of the file where the header is. */
const position = (rng: Rng, f: CorpusFile): number =>
  rng.chance(0.5) ? rng.int(Math.min(f.bytes.length, (f.sites.pixelData?.dataOffset ?? 1024) + 16)) : rng.int(f.bytes.length);
const encodingOf = (e: ElementSite) => ({ explicit: e.vr !== undefined, littleEndian: e.littleEndian });
/** An element of the data set (after the meta) to put things before: Pixel Data's when there is one. */
const bodySite = (rng: Rng, f: CorpusFile): ElementSite | undefined => {
  const body = f.sites.elements.filter((e) => e.at >= f.sites.bodyAt && e.at <= (f.sites.pixelData?.at ?? Infinity));
  return body.length ? (rng.chance(0.3) && f.sites.pixelData ? f.sites.pixelData : rng.pick(body)) : undefined;
};

function bitFlips(rng: Rng, f: CorpusFile) {
  const b = copy(f.bytes);
  const n = rng.range(1, 8);
  for (let i = 0; i < n; i++) { const at = position(rng, f); b[at]! ^= 1 << rng.int(8); }
  return { bytes: b, note: `${n} bit flips` };
}

function byteOverwrite(rng: Rng, f: CorpusFile) {
  const b = copy(f.bytes);
  const at = position(rng, f);
  const n = Math.min(rng.range(1, 16), b.length - at);
  const how = rng.pick(['random', 'fill', 'copy'] as const);
  const fill = rng.pick([0x00, 0xff, 0x7f, 0x80, 0xfe, 0x01, 0x20]);
  const from = rng.int(b.length);
  for (let i = 0; i < n; i++) b[at + i] = how === 'random' ? rng.int(256) : how === 'fill' ? fill : f.bytes[(from + i) % b.length]!;
  return { bytes: b, note: `${n} bytes at ${at} overwritten (${how})` };
}

function truncate(rng: Rng, f: CorpusFile) {
  const { pixelData, elements } = f.sites;
  const len = f.bytes.length;
  const where = rng.pick(['anywhere', 'header', 'element', 'pixels', 'end'] as const);
  let at: number;
  if (where === 'header') at = rng.int(Math.min(len, pixelData?.dataOffset ?? 1024));
  else if (where === 'element' && elements.length) at = rng.pick(elements).at + rng.int(14);
  else if (where === 'pixels' && pixelData) at = pixelData.dataOffset + rng.int(Math.max(1, len - pixelData.dataOffset));
  else if (where === 'end') at = len - rng.range(1, 16);
  else at = rng.int(len);
  at = Math.max(0, Math.min(len - 1, at));
  return { bytes: f.bytes.slice(0, at), note: `truncated at ${at} of ${len} (${where})` };
}

function lengthField(rng: Rng, f: CorpusFile) {
  const { elements, pixelData } = f.sites;
  const b = copy(f.bytes);
  if (!elements.length) return bitFlips(rng, f);
  const e = pixelData && rng.chance(0.2) ? pixelData : rng.pick(elements);
  const room = b.length - e.dataOffset;
  const value = e.lengthSize === 4
    ? rng.pick([0xffffffff, 0x7fffffff, 0x80000000, 0xfffffffe, b.length, room + rng.range(-8, 8), room + 1, e.length + 1, e.length | 1,
      e.length * 2, 0, rng.uint32(), rng.int(1024)])
    : rng.pick([0xffff, 0x7fff, 0xfffe, Math.min(0xffff, room + rng.range(-4, 4)), e.length + 1, e.length | 1, 0, rng.int(0x10000)]);
  writeUint(b, e.lengthAt, e.lengthSize, Math.max(0, value), e.littleEndian);
  return { bytes: b, note: `length of (${hex(e.tag)}) at ${e.at}: ${e.length} -> ${Math.max(0, value) >>> 0}` };
}

function undefinedLength(rng: Rng, f: CorpusFile) {
  const candidates = f.sites.elements.filter((e) => e.vr !== 'SQ' && e.tag !== 0x7fe00010);
  if (!candidates.length) return lengthField(rng, f);
  const e = rng.pick(candidates);
  let b: Uint8Array;
  if (e.lengthSize === 4) {
    b = copy(f.bytes);
    writeUint(b, e.lengthAt, 4, 0xffffffff, e.littleEndian);
  } else {
    // A short-length VR cannot say "undefined": rewrite the header as a long VR that can.
    b = splice(f.bytes, e.at, e.dataOffset, header(e.tag, rng.pick(['UN', 'OB', 'UT', 'OW']), 0xffffffff, encodingOf(e)));
  }
  let note = `undefined length on (${hex(e.tag)}) at ${e.at}`;
  if (rng.chance(0.4)) {
    // Sometimes give it an item delimiter somewhere later, as a lenient reader would look for.
    const at = Math.min(b.length, e.dataOffset + 4 + rng.int(Math.max(1, b.length - e.dataOffset)));
    b = splice(b, at, at, ITEM_DELIMITER);
    note += `, item delimiter at ${at}`;
  }
  return { bytes: b, note };
}

function nestedSequences(rng: Rng, f: CorpusFile) {
  const site = bodySite(rng, f) ?? f.sites.elements[0];
  const at = site?.at ?? Math.min(132, f.bytes.length);
  const enc = site ? encodingOf(site) : { explicit: true, littleEndian: true };
  const depth = rng.pick([1, 2, 3, 10, 100, 500, 1000, 1000, 2000, 5000]);
  const tag = rng.pick([0x00081140, 0x00400275, 0x00091010, 0x52009229, 0x52009230, 0x00283010, 0x00283000]);
  const closing = rng.pick(['all', 'some', 'none', 'defined'] as const);
  const le = enc.littleEndian;
  let inner = rng.chance(0.5) ? header(0x00280010, 'US', 2, enc) : new Uint8Array(0);
  if (inner.length) inner = concat(inner, new Uint8Array([1, 0]));
  let bytes: Uint8Array;
  if (closing === 'defined') {
    // Defined lengths, written outside in (level k from the inside holds k levels and the inner
    // element); sometimes one level lies about its length.
    const sq = header(tag, 'SQ', 0, enc).length;
    const liar = rng.chance(0.5) ? rng.int(depth) : -1;
    const wrong = rng.pick([1, -1, 8, 0x10000, 0x7fffffff]);
    const parts: Uint8Array[] = [];
    for (let level = depth - 1; level >= 0; level--) {
      const itemValue = inner.length + level * (sq + 8) + (level === liar ? wrong : 0);
      parts.push(header(tag, 'SQ', itemValue + 8, enc), item(itemValue, le));
    }
    parts.push(inner);
    bytes = concat(...parts);
  } else {
    const open = concat(header(tag, 'SQ', 0xffffffff, enc), item(0xffffffff, le));
    const close = concat(ITEM_DELIMITER, SEQUENCE_DELIMITER);
    const closed = closing === 'all' ? depth : closing === 'some' ? rng.int(depth) : 0;
    const parts: Uint8Array[] = [];
    for (let i = 0; i < depth; i++) parts.push(open);
    parts.push(inner);
    for (let i = 0; i < closed; i++) parts.push(close);
    bytes = concat(...parts);
  }
  return { bytes: splice(f.bytes, at, at, bytes), note: `${depth} nested sequences (${hex(tag)}, closing ${closing}) at ${at}` };
}

/** The indexer's first read (index-file.ts FIRST_READ): what lies across it is read twice. */
const FIRST_READ = 256 * 1024;

/**
 * A large private element before an element of the data set, sized so that the head outgrows the
 * indexer's first read, often so that the next element header straddles its end.
 */
function bigElement(rng: Rng, f: CorpusFile) {
  const site = bodySite(rng, f);
  if (!site) return truncate(rng, f);
  const enc = encodingOf(site);
  const headerLength = header(0x00091010, 'OB', 0, enc).length;
  const straddle = FIRST_READ - site.at - headerLength + rng.range(-12, 12);
  const size = Math.max(0, rng.pick([straddle, straddle, 200_000, 300_000, 1 << 20])) & ~1;
  const value = new Uint8Array(size);
  // Zeros, or copies of the file itself (full of tags and items to be misread).
  if (rng.chance(0.5)) for (let at = 0; at < size; at += f.bytes.length) value.set(f.bytes.subarray(0, size - at), at);
  const said = rng.chance(0.7) ? size : rng.pick([size + 2, size - 2, 0xffffffff, size + FIRST_READ]);
  const bytes = splice(f.bytes, site.at, site.at, concat(header(0x00091010, 'OB', said, enc), value));
  return { bytes, note: `${size}-byte element (length ${said}) before (${hex(site.tag)}) at ${site.at}` };
}

function fragmentTable(rng: Rng, f: CorpusFile) {
  const { pixelData, encapsulated } = f.sites;
  if (!pixelData) return lengthField(rng, f);
  if (!encapsulated) {
    // Native Pixel Data said to be encapsulated; sometimes with an item header at its start.
    let b = copy(f.bytes);
    writeUint(b, pixelData.lengthAt, pixelData.lengthSize, 0xffffffff, pixelData.littleEndian);
    if (pixelData.lengthSize === 2) return { bytes: b, note: 'native Pixel Data length 0xFFFF' };
    if (rng.chance(0.5)) b = splice(b, pixelData.dataOffset, pixelData.dataOffset, item(rng.pick([0, 4, 0xffffffff, rng.uint32()])));
    return { bytes: b, note: 'native Pixel Data with undefined length' };
  }
  const { bot, fragments, delimiterAt } = encapsulated;
  const len = f.bytes.length;
  const what = rng.pick(['bot-entries', 'bot-entries', 'bot-length', 'fragment-length', 'fragment-length', 'no-delimiter', 'eot', 'eot',
    'extra-fragments', 'frames'] as const);
  let b = copy(f.bytes);
  switch (what) {
    case 'bot-entries': {
      const n = bot.length >= 4 && rng.chance(0.5) ? bot.length / 4 : rng.range(1, Math.max(2, fragments.length + 1));
      const total = fragments.reduce((s, x) => s + 8 + x.length, 0);
      const style = rng.pick(['past-end', 'backwards', 'huge', 'odd', 'random', 'nonzero-first', 'duplicate'] as const);
      const entries = Array.from({ length: n }, (_, i) => {
        switch (style) {
          case 'past-end': return total + 8 * i + rng.int(len);
          case 'backwards': return (n - i - 1) * Math.floor(total / n);
          case 'huge': return rng.pick([0xffffffff, 0x7fffffff, 0x80000000 + i]);
          case 'odd': return (i * Math.floor(total / n)) | 1;
          case 'nonzero-first': return 8 + i * 8;
          case 'duplicate': return i === 0 ? 0 : Math.floor(total / 2);
          default: return rng.uint32();
        }
      });
      const table = new Uint8Array(n * 4);
      entries.forEach((x, i) => new DataView(table.buffer).setUint32(i * 4, x >>> 0, true));
      b = splice(b, bot.at, bot.at + 8 + bot.length, concat(item(table.length), table));
      return { bytes: b, note: `Basic Offset Table of ${n} entries (${style})` };
    }
    case 'bot-length': {
      const value = rng.pick([0xffffffff, 0x7fffffff, bot.length + 1, bot.length + 4, len, len - bot.at - 8 + rng.range(-4, 4), 3, 2]);
      writeUint(b, bot.at + 4, 4, Math.max(0, value), true);
      return { bytes: b, note: `Basic Offset Table item length ${bot.length} -> ${Math.max(0, value)}` };
    }
    case 'fragment-length': {
      if (!fragments.length) return lengthField(rng, f);
      const x = rng.pick(fragments);
      const value = rng.pick([0xffffffff, 0x7fffffff, 0, x.length + 1, x.length - 1, x.length + rng.range(2, 64), len, len - x.at - 8 + rng.range(-2, 2),
        Math.max(0, x.length - rng.range(2, 64))]);
      writeUint(b, x.at + 4, 4, Math.max(0, value), true);
      return { bytes: b, note: `fragment at ${x.at}: length ${x.length} -> ${Math.max(0, value)}` };
    }
    case 'no-delimiter': {
      if (delimiterAt === undefined) return truncate(rng, f);
      const how = rng.pick(['removed', 'cut', 'garbage', 'item'] as const);
      if (how === 'removed') b = splice(b, delimiterAt, delimiterAt + 8);
      else if (how === 'cut') b = b.slice(0, delimiterAt + rng.int(8));
      else if (how === 'garbage') b.set([rng.int(256), rng.int(256), rng.int(256), rng.int(256)], delimiterAt);
      else b.set(item(rng.pick([0, 8, 0xffffffff])), delimiterAt);
      return { bytes: b, note: `sequence delimiter ${how}` };
    }
    case 'eot': {
      // An Extended Offset Table (7FE0,0001) before Pixel Data that does not match the fragments.
      const starts: number[] = [];
      let offset = 0;
      for (const x of fragments) { starts.push(offset); offset += 8 + x.length; }
      const n = rng.pick([1, 2, fragments.length, fragments.length + 1, rng.range(1, 300)]);
      const style = rng.pick(['past-end', 'backwards', 'huge', 'count', 'random', 'misaligned'] as const);
      const table = new Uint8Array(n * 8);
      const v = new DataView(table.buffer);
      for (let i = 0; i < n; i++) {
        const ok = BigInt(starts[i] ?? offset);
        const value = style === 'past-end' ? BigInt(len + i) : style === 'backwards' ? BigInt(starts[n - 1 - i] ?? 0)
          : style === 'huge' ? rng.pick([0xffffffffffffffffn, 0x8000000000000000n, 1n << 53n, 0x100000000n]) : style === 'count' ? ok
          : style === 'misaligned' ? ok + 1n : BigInt(rng.uint32());
        v.setBigUint64(i * 8, value, true);
      }
      const enc = encodingOf(pixelData);
      let value = table;
      if (style === 'misaligned' && rng.chance(0.5)) value = table.subarray(0, Math.max(0, table.length - rng.range(1, 7)));
      let element = concat(header(0x7fe00001, 'OV', value.length, enc), value);
      if (rng.chance(0.5)) {
        // Extended Offset Table Lengths (7FE0,0002), as long and as wrong.
        const lengths = new Uint8Array(n * 8);
        for (let i = 0; i < n; i++) new DataView(lengths.buffer).setBigUint64(i * 8, BigInt(rng.pick([0, 1, fragments[i]?.length ?? 0, rng.uint32()])), true);
        element = concat(element, header(0x7fe00002, 'OV', lengths.length, enc), lengths);
      }
      b = splice(b, pixelData.at, pixelData.at, element);
      return { bytes: b, note: `Extended Offset Table of ${n} entries (${style}${value.length !== table.length ? ', odd length' : ''}) for ${fragments.length} fragments` };
    }
    case 'extra-fragments': {
      const at = rng.pick([...fragments.map((x) => x.at), delimiterAt ?? len]);
      const n = rng.range(1, 50);
      const parts: Uint8Array[] = [];
      for (let i = 0; i < n; i++) {
        const v = rng.pick([new Uint8Array(0), new Uint8Array([0xff, 0xd8, 0xff]), new Uint8Array([0xff, 0x4f, 0xff, 0x51]), new Uint8Array([1])]);
        parts.push(item(v.length), v);
      }
      return { bytes: splice(b, at, at, concat(...parts)), note: `${n} extra fragments at ${at}` };
    }
    case 'frames':
      return setAttribute(rng, f, 0x00280008);
  }
}

function preamble(rng: Rng, f: CorpusFile) {
  const b = f.bytes;
  const hasMeta = b.length >= 132 && String.fromCharCode(...b.subarray(128, 132)) === 'DICM';
  const how = rng.pick(hasMeta ? ['no-preamble', 'no-prefix', 'twice', 'no-DICM', 'no-meta'] as const : ['add'] as const);
  switch (how) {
    case 'no-preamble': return { bytes: b.slice(128), note: 'preamble removed, DICM first' };
    case 'no-prefix': return { bytes: b.slice(132), note: 'preamble and DICM removed' };
    case 'twice': return { bytes: concat(b.subarray(0, 132), b), note: 'preamble and DICM twice' };
    case 'no-DICM': { const c = copy(b); c.set(ascii(rng.pick(['DICN', 'dicm', '\0\0\0\0'])), 128); return { bytes: c, note: 'DICM prefix damaged' }; }
    case 'no-meta': return { bytes: b.slice(f.sites.bodyAt), note: 'file meta removed' };
    case 'add': return { bytes: concat(new Uint8Array(128), ascii('DICM'), b), note: 'preamble and DICM added to a bare data set' };
  }
}

function spliceFiles(rng: Rng, f: CorpusFile, corpus: readonly CorpusFile[]) {
  const g = rng.pick(corpus);
  const how = rng.pick(['random', 'pixel-data', 'element'] as const);
  let a = rng.int(f.bytes.length + 1);
  let b = rng.int(g.bytes.length + 1);
  if (how === 'pixel-data' && f.sites.pixelData && g.sites.pixelData) { a = f.sites.pixelData.at; b = g.sites.pixelData.at; }
  if (how === 'element' && f.sites.elements.length && g.sites.elements.length) { a = rng.pick(f.sites.elements).at; b = rng.pick(g.sites.elements).at; }
  return { bytes: concat(f.bytes.subarray(0, a), g.bytes.subarray(b)), note: `${f.name}[0,${a}) + ${g.name}[${b},end) (${how})` };
}

/**
 * Many tiny frames: Rows, Columns, Bits Allocated 1 and as many frames as the Pixel Data holds bits,
 * written just before Pixel Data (the later of two equal tags wins in dicom-parser).
 */
function tinyFrames(rng: Rng, f: CorpusFile) {
  const pd = f.sites.pixelData;
  if (!pd) return setAttribute(rng, f, 0x00280008);
  const enc = encodingOf(pd);
  const bits = rng.pick([1, 1, 8]);
  const valueLength = pd.length === 0xffffffff ? f.bytes.length - pd.dataOffset : Math.min(pd.length, f.bytes.length - pd.dataOffset);
  const frames = Math.max(1, Math.floor((valueLength * 8) / bits) - rng.int(2));
  const us = (tag: number, n: number) => { const v = new Uint8Array(2); new DataView(v.buffer).setUint16(0, n, enc.littleEndian); return concat(header(tag, 'US', 2, enc), v); };
  let count = String(frames);
  if (count.length % 2) count += ' ';
  const block = concat(us(0x00280002, 1), header(0x00280008, 'IS', count.length, enc), ascii(count), us(0x00280010, 1), us(0x00280011, 1), us(0x00280100, bits));
  return { bytes: splice(f.bytes, pd.at, pd.at, block), note: `${frames} frames of 1×1 at ${bits} bit(s)` };
}

/** Rewrites an image attribute (Rows, Columns, Bits Allocated, Number of Frames...) with an extreme value. */
function setAttribute(rng: Rng, f: CorpusFile, only?: number) {
  const tag = only ?? rng.pick([0x00280008, 0x00280008, 0x00280010, 0x00280011, 0x00280100, 0x00280002, 0x00280004]);
  const e = f.sites.elements.filter((x) => x.tag === tag && x.at >= f.sites.bodyAt).at(-1);
  const anchor = e ?? f.sites.elements.find((x) => x.tag >= 0x00280000 && x.at >= f.sites.bodyAt) ?? f.sites.pixelData;
  if (!anchor) return bitFlips(rng, f);
  const enc = encodingOf(anchor);
  let vr = e?.vr ?? 'US';
  let value: Uint8Array;
  if (tag === 0x00280008) {
    vr = 'IS';
    let s = rng.pick(['0', '-1', '2', '3', '1000', '65536', '999999999', '4294967296', '1e9', ' 12 ', 'abc', '', '9'.repeat(rng.range(10, 400)),
      String(rng.range(1, 100000)), String(rng.range(2, 8 * f.bytes.length))]);
    if (s.length % 2) s += ' ';
    value = ascii(s);
  } else if (tag === 0x00280004) {
    vr = 'CS';
    value = ascii(rng.pick(['YBR_FULL_422', 'RGB ', 'PALETTE COLOR ', 'MONOCHROME2 ', '', '_422']));
  } else {
    vr = 'US';
    value = new Uint8Array(2);
    new DataView(value.buffer).setUint16(0, rng.pick([0, 1, 2, 3, 7, 8, 16, 32, 64, 0x7fff, 0x8000, 0xffff]), enc.littleEndian);
  }
  const element = concat(header(tag, vr, value.length, enc), value);
  const bytes = e ? splice(f.bytes, e.at, e.dataOffset + Math.min(e.length, f.bytes.length - e.dataOffset), element)
    : splice(f.bytes, anchor.at, anchor.at, element);
  return { bytes, note: `(${hex(tag)}) ${e ? 'set' : 'added'}: ${vr === 'US' ? u16(value, 0, enc.littleEndian) : JSON.stringify(String.fromCharCode(...value).slice(0, 24))}` };
}

const hex = (tag: number): string => `${(tag >>> 16).toString(16).padStart(4, '0')},${(tag & 0xffff).toString(16).padStart(4, '0')}`.toUpperCase();

/** Mutation kinds and their weights (out of their sum). */
export const MUTATIONS = {
  'bit-flips': { weight: 14, run: bitFlips },
  'byte-overwrite': { weight: 10, run: byteOverwrite },
  truncate: { weight: 12, run: truncate },
  'length-field': { weight: 14, run: lengthField },
  'undefined-length': { weight: 8, run: undefinedLength },
  'nested-sequences': { weight: 8, run: nestedSequences },
  'fragment-table': { weight: 16, run: fragmentTable },
  preamble: { weight: 5, run: preamble },
  splice: { weight: 6, run: spliceFiles },
  'big-element': { weight: 3, run: bigElement },
  attribute: { weight: 7, run: (rng, f) => (rng.chance(0.2) ? tinyFrames(rng, f) : setAttribute(rng, f)) },
} satisfies Record<string, { weight: number; run: Mutator }>;

export type MutationKind = keyof typeof MUTATIONS;
const KINDS = Object.keys(MUTATIONS) as MutationKind[];
const TOTAL_WEIGHT = KINDS.reduce((s, k) => s + MUTATIONS[k].weight, 0);

/** Mutant `index` of the corpus under `seed`; a quarter of them get a few extra bit flips or bytes on top. */
export function makeMutant(seed: number, index: number, corpus: readonly CorpusFile[]): Mutant & { file: string } {
  const rng = mutantRng(seed, index);
  const file = rng.pick(corpus);
  let w = rng.int(TOTAL_WEIGHT);
  let kind = KINDS[0]!;
  for (const k of KINDS) { if (w < MUTATIONS[k].weight) { kind = k; break; } w -= MUTATIONS[k].weight; }
  let { bytes, note } = MUTATIONS[kind].run(rng, file, corpus);
  if (bytes.length > 0 && rng.chance(0.25)) {
    const n = rng.range(1, 4);
    for (let i = 0; i < n; i++) {
      const at = rng.int(Math.min(bytes.length, rng.chance(0.5) ? 2048 : bytes.length));
      bytes[at] = rng.chance(0.5) ? bytes[at]! ^ (1 << rng.int(8)) : rng.int(256);
    }
    note += `, +${n} damaged bytes`;
  }
  return { bytes, kind, note, file: file.name };
}
