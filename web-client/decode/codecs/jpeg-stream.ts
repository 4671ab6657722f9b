// Reading JPEG codestreams (ITU-T T.81): the markers and tables, and the Huffman-coded data of a
// scan. Shared by the sequential DCT decoder (jpeg-extended.ts) and the lossless one
// (jpeg-lossless.ts); the libjpeg-turbo codec (jpeg-baseline.ts) uses the header facts only.
//
// Damaged entropy-coded data is handled as libjpeg handles it, since the references come from
// libjpeg builds: data that runs into a marker or ends early is continued with zero bits, and a
// bad Huffman code decodes as 0. Damaged marker segments are errors.
import { DecodeError } from '../errors.js';

export const SOI = 0xd8;
export const EOI = 0xd9;
export const SOS = 0xda;
export const SOF0 = 0xc0; // baseline DCT
export const SOF1 = 0xc1; // extended sequential DCT, Huffman
export const SOF3 = 0xc3; // lossless, Huffman
const DHT = 0xc4;
const DQT = 0xdb;
const DRI = 0xdd;
const APP0 = 0xe0;
const APP14 = 0xee;

const PROCESS_NAMES: Record<number, string> = {
  0xc0: 'baseline DCT', 0xc1: 'extended sequential DCT', 0xc2: 'progressive DCT', 0xc3: 'lossless',
  0xc5: 'differential sequential DCT', 0xc6: 'differential progressive DCT', 0xc7: 'differential lossless',
  0xc9: 'arithmetic extended sequential DCT', 0xca: 'arithmetic progressive DCT', 0xcb: 'arithmetic lossless',
  0xcd: 'arithmetic differential sequential DCT', 0xce: 'arithmetic differential progressive DCT', 0xcf: 'arithmetic differential lossless',
};

/** "SOF3 (lossless)": a frame marker for messages. */
export function processName(marker: number): string {
  return `SOF${marker - SOF0} (${PROCESS_NAMES[marker] ?? 'unknown'})`;
}

export const corruptJpeg = (label: string, message: string) => new DecodeError('CORRUPT_FRAME', `${label}: ${message}`);

export interface JpegComponent {
  id: number;
  /** Sampling factors. */
  h: number;
  v: number;
  quantTable: number;
}

export interface JpegFrameHeader {
  /** The SOFn marker's second byte (0xC0 baseline … 0xC3 lossless …). */
  marker: number;
  precision: number;
  rows: number;
  columns: number;
  components: JpegComponent[];
}

/** The facts before the first scan: the frame header and the markers that tell the colour space. */
export interface JpegHeader {
  frame: JpegFrameHeader;
  /** A JFIF APP0 marker is present (libjpeg then takes three components to be YCbCr). */
  jfif: boolean;
  /** The transform code of the last Adobe APP14 marker (0: none, as RGB; 1: YCbCr), if any. */
  adobeTransform: number | undefined;
  /** Offsets of the JFIF APP0 and Adobe APP14 segments' marker bytes (the 0xE0 / 0xEE). */
  colourMarkers: number[];
}

export interface ScanComponent {
  /** Index into the frame's components. */
  index: number;
  dcTable: number;
  acTable: number;
}

export interface ScanHeader {
  components: ScanComponent[];
  /** Spectral selection start (for lossless: the predictor's selection value) and end. */
  ss: number;
  se: number;
  ah: number;
  /** Successive approximation low bit (for lossless: the point transform). */
  al: number;
  /** The entropy-coded data: where it starts (the caller's BitReader sets `pos` past it). */
  dataStart: number;
}

/** A Huffman table ready for decoding (T.81 Annex C, F.2.2.3). */
export interface HuffmanTable {
  /** For each 8-bit look-ahead: (code length << 8) | symbol, or 0 when the code is longer. */
  fast: Uint16Array;
  /** Largest code of each length 1..16 (index = length), -1 when there is none. */
  maxCode: Int32Array;
  /** Symbol index = code + valOffset[length]. */
  valOffset: Int32Array;
  symbols: Uint8Array;
}

// Zig-zag order position → natural (row-major) position of the 64 coefficients.
export const ZIGZAG = Uint8Array.of(
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
  35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
);

function buildHuffmanTable(counts: Uint8Array, symbols: Uint8Array, label: string): HuffmanTable {
  const fast = new Uint16Array(256);
  const maxCode = new Int32Array(18).fill(-1);
  const valOffset = new Int32Array(18);
  let code = 0;
  let k = 0;
  for (let length = 1; length <= 16; length++) {
    valOffset[length] = k - code;
    const n = counts[length - 1]!;
    for (let i = 0; i < n; i++, code++, k++) {
      if (length <= 8) {
        const first = code << (8 - length);
        fast.fill((length << 8) | symbols[k]!, first, first + (1 << (8 - length)));
      }
    }
    if (code > 1 << length) throw corruptJpeg(label, 'a Huffman table has more codes than its code lengths allow');
    if (n) maxCode[length] = code - 1;
    code <<= 1;
  }
  return { fast, maxCode, valOffset, symbols };
}

/** Walks the marker segments of a codestream, keeping the tables the scans need. */
export class JpegReader {
  pos = 0;
  frame: JpegFrameHeader | undefined;
  jfif = false;
  adobeTransform: number | undefined;
  readonly colourMarkers: number[] = [];
  restartInterval = 0;
  readonly dcTables: Array<HuffmanTable | undefined> = [];
  readonly acTables: Array<HuffmanTable | undefined> = [];
  /** Quantisation tables in natural order. */
  readonly quantTables: Array<Uint16Array | undefined> = [];

  constructor(readonly bytes: Uint8Array, readonly label: string) {
    if (bytes[0] !== 0xff || bytes[1] !== SOI) throw corruptJpeg(label, 'not a JPEG codestream (no SOI marker at the start)');
    this.pos = 2;
  }

  /**
   * Reads marker segments up to the next SOS and returns its header, with `pos` at the scan's
   * data; undefined at EOI or at the end of the bytes.
   */
  nextScan(): ScanHeader | undefined {
    const { bytes, label } = this;
    for (;;) {
      const marker = this.nextMarker();
      if (marker === undefined || marker === EOI) return undefined;
      if (marker === SOI || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // no segment
      if (this.pos + 2 > bytes.length) throw corruptJpeg(label, `marker 0xFF${hex(marker)} at the end of the data`);
      const length = (bytes[this.pos]! << 8) | bytes[this.pos + 1]!;
      const start = this.pos + 2;
      const end = this.pos + length;
      if (length < 2 || end > bytes.length) throw corruptJpeg(label, `marker 0xFF${hex(marker)} segment of ${length} bytes runs past the end of the data`);
      const data = bytes.subarray(start, end);
      if (marker === SOS) {
        this.pos = end;
        return this.readScanHeader(data);
      }
      if (marker >= 0xc0 && marker <= 0xcf && marker !== DHT && marker !== 0xc8 && marker !== 0xcc) this.readFrameHeader(marker, data);
      else if (marker === DHT) this.readHuffmanTables(data);
      else if (marker === DQT) this.readQuantTables(data);
      else if (marker === DRI) this.restartInterval = length >= 4 ? (data[0]! << 8) | data[1]! : 0;
      else if (marker === APP0 && data.length >= 14 && ascii(data, 0, 5) === 'JFIF\0') {
        this.jfif = true;
        this.colourMarkers.push(this.pos - 1);
      } else if (marker === APP14 && data.length >= 12 && ascii(data, 0, 5) === 'Adobe') {
        this.adobeTransform = data[11]!;
        this.colourMarkers.push(this.pos - 1);
      }
      this.pos = end;
    }
  }

  /** Moves `pos` to the next marker after entropy-coded data (skipping RSTn, which belong to the data). */
  skipToMarker(): void {
    const { bytes } = this;
    let p = this.pos;
    while (p + 1 < bytes.length) {
      if (bytes[p] === 0xff) {
        const next = bytes[p + 1]!;
        if (next !== 0 && next !== 0xff && (next < 0xd0 || next > 0xd7)) break;
      }
      p++;
    }
    this.pos = p;
  }

  /** The marker at `pos` (after fill bytes), `pos` moved past it; undefined at the end of the bytes. */
  private nextMarker(): number | undefined {
    const { bytes } = this;
    // Bytes that are not a marker where one should be: libjpeg skips them with a warning.
    while (this.pos < bytes.length && bytes[this.pos] !== 0xff) this.pos++;
    while (this.pos < bytes.length && bytes[this.pos] === 0xff) this.pos++;
    return this.pos < bytes.length ? bytes[this.pos++] : undefined;
  }

  private readFrameHeader(marker: number, data: Uint8Array): void {
    const { label } = this;
    if (this.frame) throw corruptJpeg(label, 'more than one frame header (SOFn)');
    if (data.length < 6) throw corruptJpeg(label, 'frame header (SOFn) too short');
    const count = data[5]!;
    if (count < 1 || data.length < 6 + 3 * count) throw corruptJpeg(label, `frame header (SOFn) with ${count} components is too short`);
    const components: JpegComponent[] = [];
    for (let i = 0; i < count; i++) {
      const o = 6 + 3 * i;
      const h = data[o + 1]! >> 4;
      const v = data[o + 1]! & 15;
      if (h < 1 || h > 4 || v < 1 || v > 4) throw corruptJpeg(label, `component ${i + 1} has sampling factors ${h}×${v} (1..4 allowed)`);
      components.push({ id: data[o]!, h, v, quantTable: data[o + 2]! & 3 });
    }
    this.frame = {
      marker,
      precision: data[0]!,
      rows: (data[1]! << 8) | data[2]!,
      columns: (data[3]! << 8) | data[4]!,
      components,
    };
  }

  private readScanHeader(data: Uint8Array): ScanHeader {
    const { label, frame } = this;
    if (!frame) throw corruptJpeg(label, 'a scan (SOS) before the frame header (SOFn)');
    const count = data[0] ?? 0;
    if (count < 1 || count > 4 || data.length < 4 + 2 * count) throw corruptJpeg(label, `scan header (SOS) with ${count} components is malformed`);
    const components: ScanComponent[] = [];
    for (let i = 0; i < count; i++) {
      const id = data[1 + 2 * i]!;
      const index = frame.components.findIndex((c) => c.id === id);
      if (index < 0) throw corruptJpeg(label, `scan names component ${id}, which the frame header does not have`);
      const tables = data[2 + 2 * i]!;
      components.push({ index, dcTable: (tables >> 4) & 3, acTable: tables & 3 });
    }
    const o = 1 + 2 * count;
    return { components, ss: data[o]!, se: data[o + 1]!, ah: data[o + 2]! >> 4, al: data[o + 2]! & 15, dataStart: this.pos };
  }

  private readHuffmanTables(data: Uint8Array): void {
    let p = 0;
    while (p + 17 <= data.length) {
      const tc = data[p]! >> 4;
      const th = data[p]! & 3;
      const counts = data.subarray(p + 1, p + 17);
      let total = 0;
      for (const n of counts) total += n;
      if (total > 256 || p + 17 + total > data.length) throw corruptJpeg(this.label, 'Huffman table (DHT) longer than its segment');
      const table = buildHuffmanTable(counts, data.slice(p + 17, p + 17 + total), this.label);
      (tc === 0 ? this.dcTables : this.acTables)[th] = table;
      p += 17 + total;
    }
  }

  private readQuantTables(data: Uint8Array): void {
    let p = 0;
    while (p < data.length) {
      const sixteenBit = data[p]! >> 4 !== 0;
      const tq = data[p]! & 3;
      p++;
      if (p + (sixteenBit ? 128 : 64) > data.length) throw corruptJpeg(this.label, 'quantisation table (DQT) longer than its segment');
      const table = new Uint16Array(64);
      for (let k = 0; k < 64; k++) {
        table[ZIGZAG[k]!] = sixteenBit ? (data[p]! << 8) | data[p + 1]! : data[p]!;
        p += sixteenBit ? 2 : 1;
      }
      this.quantTables[tq] = table;
    }
  }
}

/** Reads the markers up to the first scan: frame header and colour markers. */
export function readJpegHeader(bytes: Uint8Array, label: string): JpegHeader {
  const reader = new JpegReader(bytes, label);
  reader.nextScan();
  if (!reader.frame) throw corruptJpeg(label, 'no frame header (SOFn)');
  return { frame: reader.frame, jfif: reader.jfif, adobeTransform: reader.adobeTransform, colourMarkers: reader.colourMarkers };
}

/**
 * Whether libjpeg takes three components to be YCbCr, which it then converts to RGB by default
 * (jdapimin.c default_decompress_parms): JFIF says so; else an Adobe marker's transform code (0 is
 * RGB, anything else YCbCr); else component ids 'R', 'G', 'B' mean RGB and all others YCbCr.
 */
export function libjpegSeesYcbcr(header: JpegHeader): boolean {
  const { components } = header.frame;
  if (components.length !== 3) return false;
  if (header.jfif) return true;
  if (header.adobeTransform !== undefined) return header.adobeTransform !== 0;
  return !(components[0]!.id === 0x52 && components[1]!.id === 0x47 && components[2]!.id === 0x42);
}

/**
 * The bits of a scan's entropy-coded data, most significant first, with the stuffed zero byte
 * after each 0xFF removed. At a marker (or the end of the bytes) it stops and feeds zero bits.
 */
export class BitReader {
  /** The next unread byte; at a marker it stays on the marker's 0xFF. */
  pos: number;
  /** Reached a marker or the end: zeros are fed from here on (until `restart`). */
  private stopped = false;
  // Up to 32 buffered bits: the low `bits` bits of `acc` (higher bits of `acc` are stale).
  private acc = 0;
  private bits = 0;

  constructor(private readonly data: Uint8Array, start: number) {
    this.pos = start;
  }

  private fill(): void {
    const { data } = this;
    while (this.bits <= 24) {
      let byte = 0;
      if (!this.stopped) {
        if (this.pos >= data.length) {
          this.stopped = true;
        } else {
          byte = data[this.pos]!;
          if (byte !== 0xff) {
            this.pos++;
          } else {
            // 0xFF 0x00 is a data byte 0xFF (extra 0xFF fill bytes before it are dropped, as libjpeg does).
            let p = this.pos + 1;
            while (data[p] === 0xff) p++;
            if (data[p] === 0) {
              this.pos = p + 1;
            } else {
              this.stopped = true;
              byte = 0;
            }
          }
        }
      }
      this.acc = (this.acc << 8) | byte;
      this.bits += 8;
    }
  }

  /** The next `n` (0..16) bits as an unsigned number. */
  bitsValue(n: number): number {
    if (this.bits < n) this.fill();
    this.bits -= n;
    return (this.acc >>> this.bits) & ((1 << n) - 1);
  }

  /** A value of magnitude category `s` (T.81 F.2.2.1 EXTEND): `s` bits, the low half negative. */
  receiveExtend(s: number): number {
    if (s === 0) return 0;
    const v = this.bitsValue(s);
    return v < 1 << (s - 1) ? v - (1 << s) + 1 : v;
  }

  /** The next Huffman-coded symbol. */
  decode(table: HuffmanTable): number {
    if (this.bits < 16) this.fill();
    const entry = table.fast[(this.acc >>> (this.bits - 8)) & 0xff]!;
    if (entry) {
      this.bits -= entry >> 8;
      return entry & 0xff;
    }
    for (let length = 9; length <= 16; length++) {
      const code = (this.acc >>> (this.bits - length)) & ((1 << length) - 1);
      if (code <= table.maxCode[length]!) {
        this.bits -= length;
        return table.symbols[code + table.valOffset[length]!]!;
      }
    }
    // No such code: libjpeg warns, drops 16 bits and carries on with 0.
    this.bits -= 16;
    return 0;
  }

  /**
   * At the end of a restart interval: drops the buffered bits and reads the RSTn marker that
   * should follow. A missing marker is passed over (the data then decodes as it can).
   */
  restart(): void {
    const { data } = this;
    this.acc = 0;
    this.bits = 0;
    let p = this.pos;
    while (p + 1 < data.length && !(data[p] === 0xff && data[p + 1] !== 0 && data[p + 1] !== 0xff)) p++;
    const marker = data[p + 1];
    if (marker !== undefined && marker >= 0xd0 && marker <= 0xd7) {
      this.pos = p + 2;
      this.stopped = false;
    }
  }
}

function ascii(data: Uint8Array, start: number, length: number): string {
  return String.fromCharCode(...data.subarray(start, start + length));
}

const hex = (n: number) => n.toString(16).toUpperCase().padStart(2, '0');
