// 12-bit sequential DCT frames (JPEG Extended), and 8-bit ones in sampling layouts libjpeg-turbo
// decodes otherwise, as jpeg.ts routes them: a sequential Huffman DCT decoder of our own, since
// the WASM libjpeg-turbo build decodes 8-bit samples only. It follows IJG libjpeg 6b, which made the references
// (dcmtk): the accurate integer IDCT (jidctint.c "islow"), "fancy" triangle upsampling of 2:1
// chroma (jdsample.c) and the integer YCbCr → RGB tables (jdcolor.c), so results match within ±1.
// Not supported: progressive, arithmetic-coded and hierarchical processes (not in DICOM's JPEG
// syntaxes), and the DNL marker.
import type { FrameLayout } from '../frame-layout.js';
import type { CodecOutput } from '../decoders.js';
import { checkFrame, chooseColour, codecOutput, framePixels } from './jpeg-output.js';
import {
  BitReader, JpegReader, SOF0, SOF1, ZIGZAG, corruptJpeg, processName, type HuffmanTable,
  type JpegFrameHeader, type JpegHeader, type ScanHeader,
} from './jpeg-stream.js';

/** A sequential DCT frame through our decoder, whatever its precision (jpeg.ts decides). */
export function decodeDctFrame(bytes: Uint8Array, layout: FrameLayout, header: JpegHeader, label: string): CodecOutput {
  checkFrame(header.frame, layout, label);
  const colour = chooseColour(header, layout);
  const image = decodeDct(bytes, colour.convert, label);
  return codecOutput(framePixels(image.samples, layout, label), colour);
}

export interface DctImage {
  frame: JpegFrameHeader;
  /** Interleaved samples: 8-bit precision in bytes, 12-bit in 16-bit words. */
  samples: Uint8Array | Uint16Array;
}

/** One component's decoded samples, at its own (possibly subsampled) resolution. */
interface Plane {
  h: number;
  v: number;
  /** Samples a row in `data` (whole blocks, so wider than the component). */
  stride: number;
  /** The component's real size: ceil(image size × factor / largest factor). */
  width: number;
  height: number;
  data: Uint16Array;
  /** Whole blocks a row and a column holding real samples (a non-interleaved scan codes these). */
  blocksWide: number;
  blocksHigh: number;
}

/** Decodes a sequential DCT codestream (SOF0 / SOF1, 8- or 12-bit, any components and sampling). */
export function decodeDct(bytes: Uint8Array, convertYcbcr: boolean, label: string): DctImage {
  const reader = new JpegReader(bytes, label);
  let planes: Plane[] | undefined;
  let frame: JpegFrameHeader | undefined;
  for (let scan = reader.nextScan(); scan; scan = reader.nextScan()) {
    if (!frame) {
      frame = reader.frame!;
      if (frame.marker !== SOF0 && frame.marker !== SOF1) throw corruptJpeg(label, `${processName(frame.marker)} is not a sequential Huffman DCT process`);
      if (frame.precision !== 8 && frame.precision !== 12) throw corruptJpeg(label, `sample precision ${frame.precision} (DCT processes have 8 or 12)`);
      if (frame.rows === 0 || frame.columns === 0) throw corruptJpeg(label, `frame size ${frame.columns} × ${frame.rows} (a DNL marker is not supported)`);
      planes = makePlanes(frame);
    }
    decodeScan(reader, scan, frame, planes!, label);
  }
  if (!frame || !planes) throw corruptJpeg(label, reader.frame ? 'no scan (SOS)' : 'no frame header (SOFn)');
  return { frame, samples: assemble(frame, planes, convertYcbcr, label) };
}

function makePlanes(frame: JpegFrameHeader): Plane[] {
  const hMax = Math.max(...frame.components.map((c) => c.h));
  const vMax = Math.max(...frame.components.map((c) => c.v));
  const mcusWide = Math.ceil(frame.columns / (8 * hMax));
  const mcusHigh = Math.ceil(frame.rows / (8 * vMax));
  return frame.components.map(({ h, v }) => {
    const width = Math.ceil((frame.columns * h) / hMax);
    const height = Math.ceil((frame.rows * v) / vMax);
    const stride = mcusWide * h * 8;
    return { h, v, stride, width, height, data: new Uint16Array(stride * mcusHigh * v * 8), blocksWide: Math.ceil(width / 8), blocksHigh: Math.ceil(height / 8) };
  });
}

function decodeScan(reader: JpegReader, scan: ScanHeader, frame: JpegFrameHeader, planes: Plane[], label: string): void {
  const tables = scan.components.map(({ index, dcTable, acTable }) => {
    const dc = reader.dcTables[dcTable];
    const ac = reader.acTables[acTable];
    const quant = reader.quantTables[frame.components[index]!.quantTable];
    if (!dc || !ac) throw corruptJpeg(label, `scan uses Huffman table ${dc ? `AC ${acTable}` : `DC ${dcTable}`}, which is not defined`);
    if (!quant) throw corruptJpeg(label, `component ${index + 1} uses quantisation table ${frame.components[index]!.quantTable}, which is not defined`);
    return { plane: planes[index]!, dc, ac, quant, pred: 0 };
  });
  const bits = new BitReader(reader.bytes, scan.dataStart);
  const idct = new Idct(frame.precision);
  const coefficients = new Int32Array(64);
  const restartInterval = reader.restartInterval;
  // One component: blocks in raster order over the component; several: MCUs of h × v blocks each.
  const single = tables.length === 1;
  const mcusWide = single ? tables[0]!.plane.blocksWide : planes[0]!.stride / (8 * planes[0]!.h);
  const mcusHigh = single ? tables[0]!.plane.blocksHigh : planes[0]!.data.length / planes[0]!.stride / (8 * planes[0]!.v);
  const mcuCount = mcusWide * mcusHigh;
  for (let mcu = 0; mcu < mcuCount; mcu++) {
    if (restartInterval && mcu > 0 && mcu % restartInterval === 0) {
      bits.restart();
      for (const t of tables) t.pred = 0;
    }
    const mx = mcu % mcusWide;
    const my = (mcu - mx) / mcusWide;
    for (const t of tables) {
      const { plane } = t;
      const h = single ? 1 : plane.h;
      const v = single ? 1 : plane.v;
      for (let by = 0; by < v; by++) {
        for (let bx = 0; bx < h; bx++) {
          t.pred = decodeBlock(bits, t.dc, t.ac, t.pred, coefficients);
          const x = (mx * h + bx) * 8;
          const y = (my * v + by) * 8;
          idct.transform(coefficients, t.quant, plane.data, y * plane.stride + x, plane.stride);
        }
      }
    }
  }
  reader.pos = bits.pos;
  reader.skipToMarker();
}

/** Decodes one block's quantised coefficients into `out` (natural order); returns the new DC predictor. */
function decodeBlock(bits: BitReader, dc: HuffmanTable, ac: HuffmanTable, pred: number, out: Int32Array): number {
  out.fill(0);
  const dcValue = pred + bits.receiveExtend(bits.decode(dc));
  out[0] = (dcValue << 16) >> 16; // libjpeg keeps coefficients as 16-bit integers
  for (let k = 1; k < 64;) {
    const rs = bits.decode(ac);
    const r = rs >> 4;
    const s = rs & 15;
    if (s === 0) {
      if (r !== 15) break; // end of block
      k += 16;
      continue;
    }
    k += r;
    if (k > 63) break;
    out[ZIGZAG[k]!] = bits.receiveExtend(s);
    k++;
  }
  return dcValue;
}

// ------------------------------------------------------------------ IDCT (jidctint.c, islow)

const CONST_BITS = 13;
const FIX_0_298631336 = 2446;
const FIX_0_390180644 = 3196;
const FIX_0_541196100 = 4433;
const FIX_0_765366865 = 6270;
const FIX_0_899976223 = 7373;
const FIX_1_175875602 = 9633;
const FIX_1_501321110 = 12299;
const FIX_1_847759065 = 15137;
const FIX_1_961570560 = 16069;
const FIX_2_053119869 = 16819;
const FIX_2_562915447 = 20995;
const FIX_3_072711026 = 25172;

/** The accurate integer inverse DCT of libjpeg, with its dequantisation and output range limiting. */
class Idct {
  private readonly workspace = new Int32Array(64);
  /** 2 for 8-bit samples, 1 for 12-bit (keeps the products within 32 bits). */
  private readonly pass1Bits: number;
  private readonly center: number;
  private readonly max: number;

  constructor(precision: number) {
    this.pass1Bits = precision === 8 ? 2 : 1;
    this.center = 1 << (precision - 1);
    this.max = (1 << precision) - 1;
  }

  /** Like libjpeg's range-limit table: values far out of range wrap (mod 4 × 2^P) before clamping. */
  private limit(x: number): number {
    const direct = x + this.center;
    if (direct >= 0 && direct <= this.max) return direct;
    const range = 4 * (this.max + 1);
    const half = range >> 1;
    const wrapped = ((((x + half) % range) + range) % range) - half;
    const v = wrapped + this.center;
    return v < 0 ? 0 : v > this.max ? this.max : v;
  }

  transform(coef: Int32Array, quant: Uint16Array, out: Uint16Array, offset: number, stride: number): void {
    const ws = this.workspace;
    const pass1 = this.pass1Bits;
    const shift1 = CONST_BITS - pass1;
    const round1 = 1 << (shift1 - 1);
    // Pass 1: columns of the dequantised input into the workspace, scaled up by 2^pass1.
    for (let c = 0; c < 8; c++) {
      if (!coef[8 + c] && !coef[16 + c] && !coef[24 + c] && !coef[32 + c] && !coef[40 + c] && !coef[48 + c] && !coef[56 + c]) {
        const dc = coef[c]! * quant[c]! * (1 << pass1);
        for (let r = 0; r < 8; r++) ws[r * 8 + c] = dc;
        continue;
      }
      // Even part.
      let z2 = coef[16 + c]! * quant[16 + c]!;
      let z3 = coef[48 + c]! * quant[48 + c]!;
      let z1 = (z2 + z3) * FIX_0_541196100;
      let tmp2 = z1 - z3 * FIX_1_847759065;
      let tmp3 = z1 + z2 * FIX_0_765366865;
      z2 = coef[c]! * quant[c]!;
      z3 = coef[32 + c]! * quant[32 + c]!;
      let tmp0 = (z2 + z3) * 8192;
      let tmp1 = (z2 - z3) * 8192;
      const tmp10 = tmp0 + tmp3;
      const tmp13 = tmp0 - tmp3;
      const tmp11 = tmp1 + tmp2;
      const tmp12 = tmp1 - tmp2;
      // Odd part.
      tmp0 = coef[56 + c]! * quant[56 + c]!;
      tmp1 = coef[40 + c]! * quant[40 + c]!;
      tmp2 = coef[24 + c]! * quant[24 + c]!;
      tmp3 = coef[8 + c]! * quant[8 + c]!;
      z1 = tmp0 + tmp3;
      z2 = tmp1 + tmp2;
      z3 = tmp0 + tmp2;
      let z4 = tmp1 + tmp3;
      const z5 = (z3 + z4) * FIX_1_175875602;
      tmp0 *= FIX_0_298631336;
      tmp1 *= FIX_2_053119869;
      tmp2 *= FIX_3_072711026;
      tmp3 *= FIX_1_501321110;
      z1 *= -FIX_0_899976223;
      z2 *= -FIX_2_562915447;
      z3 = z3 * -FIX_1_961570560 + z5;
      z4 = z4 * -FIX_0_390180644 + z5;
      tmp0 += z1 + z3;
      tmp1 += z2 + z4;
      tmp2 += z2 + z3;
      tmp3 += z1 + z4;
      ws[c] = descale(tmp10 + tmp3, shift1, round1);
      ws[56 + c] = descale(tmp10 - tmp3, shift1, round1);
      ws[8 + c] = descale(tmp11 + tmp2, shift1, round1);
      ws[48 + c] = descale(tmp11 - tmp2, shift1, round1);
      ws[16 + c] = descale(tmp12 + tmp1, shift1, round1);
      ws[40 + c] = descale(tmp12 - tmp1, shift1, round1);
      ws[24 + c] = descale(tmp13 + tmp0, shift1, round1);
      ws[32 + c] = descale(tmp13 - tmp0, shift1, round1);
    }
    // Pass 2: rows of the workspace to samples, removing the 2^pass1 and the 8 of the 2-D DCT.
    const shift2 = CONST_BITS + pass1 + 3;
    const round2 = 2 ** (shift2 - 1);
    for (let r = 0; r < 8; r++) {
      const w = r * 8;
      const o = offset + r * stride;
      // Only a DC term: the full computation below reduces to this (an optimisation in libjpeg too).
      if (!ws[w + 1] && !ws[w + 2] && !ws[w + 3] && !ws[w + 4] && !ws[w + 5] && !ws[w + 6] && !ws[w + 7]) {
        const value = this.limit(descale(ws[w]!, pass1 + 3, 1 << (pass1 + 2)));
        out.fill(value, o, o + 8);
        continue;
      }
      // Even part.
      let z2 = ws[w + 2]!;
      let z3 = ws[w + 6]!;
      let z1 = (z2 + z3) * FIX_0_541196100;
      let tmp2 = z1 - z3 * FIX_1_847759065;
      let tmp3 = z1 + z2 * FIX_0_765366865;
      let tmp0 = (ws[w]! + ws[w + 4]!) * 8192;
      let tmp1 = (ws[w]! - ws[w + 4]!) * 8192;
      const tmp10 = tmp0 + tmp3;
      const tmp13 = tmp0 - tmp3;
      const tmp11 = tmp1 + tmp2;
      const tmp12 = tmp1 - tmp2;
      // Odd part.
      tmp0 = ws[w + 7]!;
      tmp1 = ws[w + 5]!;
      tmp2 = ws[w + 3]!;
      tmp3 = ws[w + 1]!;
      z1 = tmp0 + tmp3;
      z2 = tmp1 + tmp2;
      z3 = tmp0 + tmp2;
      let z4 = tmp1 + tmp3;
      const z5 = (z3 + z4) * FIX_1_175875602;
      tmp0 *= FIX_0_298631336;
      tmp1 *= FIX_2_053119869;
      tmp2 *= FIX_3_072711026;
      tmp3 *= FIX_1_501321110;
      z1 *= -FIX_0_899976223;
      z2 *= -FIX_2_562915447;
      z3 = z3 * -FIX_1_961570560 + z5;
      z4 = z4 * -FIX_0_390180644 + z5;
      tmp0 += z1 + z3;
      tmp1 += z2 + z4;
      tmp2 += z2 + z3;
      tmp3 += z1 + z4;
      out[o] = this.limit(descale(tmp10 + tmp3, shift2, round2));
      out[o + 7] = this.limit(descale(tmp10 - tmp3, shift2, round2));
      out[o + 1] = this.limit(descale(tmp11 + tmp2, shift2, round2));
      out[o + 6] = this.limit(descale(tmp11 - tmp2, shift2, round2));
      out[o + 2] = this.limit(descale(tmp12 + tmp1, shift2, round2));
      out[o + 5] = this.limit(descale(tmp12 - tmp1, shift2, round2));
      out[o + 3] = this.limit(descale(tmp13 + tmp0, shift2, round2));
      out[o + 4] = this.limit(descale(tmp13 - tmp0, shift2, round2));
    }
  }
}

/**
 * Rounded arithmetic right shift (libjpeg's DESCALE). The sums are doubles: with odd data they can
 * pass 32 bits (libjpeg's INT32 is a 64-bit long on the platforms the references were made on).
 */
function descale(x: number, shift: number, round: number): number {
  const v = x + round;
  return v >= -0x80000000 && v <= 0x7fffffff ? v >> shift : Math.floor(v / 2 ** shift);
}

// ------------------------------------------------------------------ upsampling and colour

/**
 * The components at full resolution, interleaved, converted from YCbCr to RGB if asked (three
 * components only). Upsampling as libjpeg 6b with fancy upsampling on (its default): 2:1
 * horizontal and 2:1 both ways by triangle filter when the component is wider than 2 samples,
 * other integral ratios by replication.
 */
function assemble(frame: JpegFrameHeader, planes: Plane[], convertYcbcr: boolean, label: string): Uint8Array | Uint16Array {
  const { columns, rows, precision } = frame;
  const n = planes.length;
  const hMax = Math.max(...planes.map((p) => p.h));
  const vMax = Math.max(...planes.map((p) => p.v));
  const full = planes.map((p) => upsample(p, hMax / p.h, vMax / p.v, columns, rows, label));
  const out = precision === 8 ? new Uint8Array(columns * rows * n) : new Uint16Array(columns * rows * n);
  if (convertYcbcr && n === 3) {
    const t = colourTables(precision);
    const [y, cb, cr] = full as [Int32Array, Int32Array, Int32Array];
    const max = (1 << precision) - 1;
    const clamp = (v: number) => (v < 0 ? 0 : v > max ? max : v);
    for (let i = 0, o = 0; i < y.length; i++, o += 3) {
      const l = y[i]!;
      const b = cb[i]!;
      const r = cr[i]!;
      out[o] = clamp(l + t.crR[r]!);
      out[o + 1] = clamp(l + ((t.cbG[b]! + t.crG[r]!) >> 16));
      out[o + 2] = clamp(l + t.cbB[b]!);
    }
    return out;
  }
  for (let c = 0; c < n; c++) {
    const plane = full[c]!;
    for (let i = 0, o = c; i < plane.length; i++, o += n) out[o] = plane[i]!;
  }
  return out;
}

/** One component brought to columns × rows samples. */
function upsample(p: Plane, hr: number, vr: number, columns: number, rows: number, label: string): Int32Array {
  const out = new Int32Array(columns * rows);
  const { data, stride, width, height } = p;
  if (!Number.isInteger(hr) || !Number.isInteger(vr)) throw corruptJpeg(label, `sampling factors with a fractional ratio (${p.h}×${p.v} against the largest)`);
  const fancy = width > 2 && hr === 2 && (vr === 1 || vr === 2);
  if (!fancy) {
    for (let y = 0; y < rows; y++) {
      const row = Math.floor(y / vr) * stride;
      for (let x = 0; x < columns; x++) out[y * columns + x] = data[row + Math.floor(x / hr)]!;
    }
    return out;
  }
  // A row of 2 × width output samples, cropped to the image.
  const line = new Int32Array(2 * width);
  for (let y = 0; y < rows; y++) {
    if (vr === 1) {
      // jdsample.c h2v1_fancy_upsample: 3/4 of the nearer sample, 1/4 of the further.
      const s = (Math.min(y, height - 1)) * stride;
      line[0] = data[s]!;
      line[1] = (data[s]! * 3 + data[s + 1]! + 2) >> 2;
      for (let x = 1; x < width - 1; x++) {
        const v = data[s + x]! * 3;
        line[2 * x] = (v + data[s + x - 1]! + 1) >> 2;
        line[2 * x + 1] = (v + data[s + x + 1]! + 2) >> 2;
      }
      line[2 * width - 2] = (data[s + width - 1]! * 3 + data[s + width - 2]! + 1) >> 2;
      line[2 * width - 1] = data[s + width - 1]!;
    } else {
      // jdsample.c h2v2_fancy_upsample: the nearer row 3/4, the other 1/4 (rows beyond the
      // component's edges repeat its first / last row), then the same across the row.
      const inRow = y >> 1;
      const other = y & 1 ? Math.min(inRow + 1, height - 1) : Math.max(inRow - 1, 0);
      const a = Math.min(inRow, height - 1) * stride;
      const b = other * stride;
      const sum = (x: number) => data[a + x]! * 3 + data[b + x]!;
      let last = sum(0);
      let current = last;
      let next = sum(1);
      line[0] = (current * 4 + 8) >> 4;
      line[1] = (current * 3 + next + 7) >> 4;
      for (let x = 1; x < width - 1; x++) {
        last = current;
        current = next;
        next = sum(x + 1);
        line[2 * x] = (current * 3 + last + 8) >> 4;
        line[2 * x + 1] = (current * 3 + next + 7) >> 4;
      }
      last = current;
      current = next;
      line[2 * width - 2] = (current * 3 + last + 8) >> 4;
      line[2 * width - 1] = (current * 4 + 7) >> 4;
    }
    out.set(line.subarray(0, columns), y * columns);
  }
  return out;
}

interface ColourTables {
  crR: Int32Array;
  cbB: Int32Array;
  crG: Int32Array;
  cbG: Int32Array;
}
const colourTableCache = new Map<number, ColourTables>();

/** jdcolor.c build_ycc_rgb_table: R = Y + 1.402 Cr', G = Y - 0.34414 Cb' - 0.71414 Cr', B = Y + 1.772 Cb'. */
function colourTables(precision: number): ColourTables {
  let t = colourTableCache.get(precision);
  if (t) return t;
  const size = 1 << precision;
  const center = size >> 1;
  const fix = (x: number) => Math.floor(x * 65536 + 0.5);
  const half = 1 << 15;
  t = { crR: new Int32Array(size), cbB: new Int32Array(size), crG: new Int32Array(size), cbG: new Int32Array(size) };
  for (let i = 0; i < size; i++) {
    const x = i - center;
    t.crR[i] = (fix(1.402) * x + half) >> 16;
    t.cbB[i] = (fix(1.772) * x + half) >> 16;
    t.crG[i] = -fix(0.71414) * x;
    t.cbG[i] = -fix(0.34414) * x + half;
  }
  colourTableCache.set(precision, t);
  return t;
}
