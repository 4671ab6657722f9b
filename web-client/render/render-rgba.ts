// Decoded stored values to RGBA display pixels, for every photometric interpretation:
// MONOCHROME1/2 through the grey pipeline, RGB, YBR_FULL and YBR_FULL_422 converted to RGB,
// PALETTE COLOR through its lookup tables. Pure: runs in a page, a worker or Node.
import type { ImageAttributes } from '../../shared/protocol.js';
import { greyFunction, greyTable, modalityTransform, type GreyOptions, type Window } from './grey-lut.js';
import { lookup, lutEntries } from './lookup-table.js';
import { minMax } from '../decode/pixels.js';

export type Pixels = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array;

export type RenderInstance = Pick<ImageAttributes,
  'rows' | 'columns' | 'samplesPerPixel' | 'photometricInterpretation' | 'bitsAllocated' | 'bitsStored' | 'pixelRepresentation' |
  'hasRescale' | 'rescaleSlope' | 'rescaleIntercept' | 'modalityLut' | 'voiLuts' | 'voiLutFunction' | 'windowCenter' | 'windowWidth' |
  'redPalette' | 'greenPalette' | 'bluePalette'>;

export interface RenderOptions extends GreyOptions {
  /** The colour space of `pixels` when the decoder converted it (e.g. JPEG YBR decoded to 'RGB'). */
  colourSpace?: string;
}

export function isGrey(photometric: string): boolean {
  return photometric === 'MONOCHROME1' || photometric === 'MONOCHROME2' || photometric === '';
}

/** The window a viewer opens with: the file's first, else the frame's full range in output units. */
export function initialWindow(pixels: Pixels, instance: RenderInstance): Window | undefined {
  if (instance.windowCenter.length && instance.windowWidth.length) return { center: instance.windowCenter[0]!, width: instance.windowWidth[0]! };
  if (instance.voiLuts.length) return undefined;
  const { min, max } = minMax(instance.bitsAllocated === 1 ? new Uint8Array([0, 1]) : pixels);
  const m = modalityTransform(instance);
  const a = m(min);
  const b = m(max);
  const lo = Math.min(a, b);
  const hi = Math.max(a, b);
  return { center: (lo + hi + 1) / 2, width: Math.max(1, hi - lo + 1) };
}

/** Renders `pixels` into `out` (RGBA, rows × columns × 4), allocated if not given. */
export function renderRgba(pixels: Pixels, instance: RenderInstance, options: RenderOptions = {}, out?: Uint8ClampedArray): Uint8ClampedArray {
  const n = instance.rows * instance.columns;
  const rgba = out && out.length === n * 4 ? out : new Uint8ClampedArray(n * 4);
  const space = options.colourSpace ?? instance.photometricInterpretation;
  if (isGrey(space)) renderGrey(pixels, instance, options, rgba, n);
  else if (space === 'PALETTE COLOR') renderPalette(pixels, instance, rgba, n);
  else if (space === 'YBR_FULL_422' && pixels.length === n * 2) renderYbr422(pixels, instance, rgba);
  else if (space.startsWith('YBR_FULL')) renderColour(pixels, instance, rgba, n, true);
  else renderColour(pixels, instance, rgba, n, false);
  return rgba;
}

function renderGrey(pixels: Pixels, instance: RenderInstance, options: GreyOptions, rgba: Uint8ClampedArray, n: number): void {
  const write = (i: number, g: number) => { const o = i * 4; rgba[o] = g; rgba[o + 1] = g; rgba[o + 2] = g; rgba[o + 3] = 255; };
  if (instance.bitsAllocated === 1) {
    const f = greyFunction({ ...instance, bitsStored: 1, pixelRepresentation: 0 }, options);
    const off = f(0);
    const on = f(1);
    for (let i = 0; i < n; i++) write(i, (pixels[i >> 3]! >> (i & 7)) & 1 ? on : off);
    return;
  }
  const t = greyTable(instance, options);
  if (t) {
    const { table, min } = t;
    const last = table.length - 1;
    for (let i = 0; i < n; i++) {
      const k = pixels[i]! - min;
      write(i, table[k < 0 ? 0 : k > last ? last : k]!);
    }
    return;
  }
  const f = greyFunction(instance, options);
  for (let i = 0; i < n; i++) write(i, f(pixels[i]!));
}

/** Samples wider than 8 bits are scaled down to 8 by their stored bits. */
function shiftFor(instance: RenderInstance): number {
  return Math.max(0, (instance.bitsStored || instance.bitsAllocated) - 8);
}

function renderColour(pixels: Pixels, instance: RenderInstance, rgba: Uint8ClampedArray, n: number, ybr: boolean): void {
  const s = shiftFor(instance);
  const scale = 1 / 2 ** s;
  for (let i = 0, p = 0, o = 0; i < n; i++, p += 3, o += 4) {
    const a = pixels[p]! * scale;
    const b = pixels[p + 1]! * scale;
    const c = pixels[p + 2]! * scale;
    if (ybr) {
      // ITU-R BT.601 full range, as PS3.3 C.7.6.3.1.2 gives for YBR_FULL.
      rgba[o] = a + 1.402 * (c - 128);
      rgba[o + 1] = a - 0.344136 * (b - 128) - 0.714136 * (c - 128);
      rgba[o + 2] = a + 1.772 * (b - 128);
    } else {
      rgba[o] = a; rgba[o + 1] = b; rgba[o + 2] = c;
    }
    rgba[o + 3] = 255;
  }
}

/** Native YBR_FULL_422: Y1 Y2 Cb Cr for each pair of pixels on a row. */
function renderYbr422(pixels: Pixels, instance: RenderInstance, rgba: Uint8ClampedArray): void {
  const { rows, columns } = instance;
  let p = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < columns; c += 2) {
      const y1 = pixels[p]!; const y2 = pixels[p + 1]!; const cb = pixels[p + 2]! - 128; const cr = pixels[p + 3]! - 128;
      p += 4;
      for (let k = 0; k < 2 && c + k < columns; k++) {
        const y = k ? y2 : y1;
        const o = (r * columns + c + k) * 4;
        rgba[o] = y + 1.402 * cr;
        rgba[o + 1] = y - 0.344136 * cb - 0.714136 * cr;
        rgba[o + 2] = y + 1.772 * cb;
        rgba[o + 3] = 255;
      }
    }
  }
}

function renderPalette(pixels: Pixels, instance: RenderInstance, rgba: Uint8ClampedArray, n: number): void {
  const channels = [instance.redPalette, instance.greenPalette, instance.bluePalette];
  if (channels.some((c) => !c)) {
    for (let i = 0; i < n; i++) { const o = i * 4; rgba[o] = rgba[o + 1] = rgba[o + 2] = 0; rgba[o + 3] = 255; }
    return;
  }
  // One 8-bit table per channel over the index range: a lookup per pixel and channel.
  const tables = channels.map((lut) => {
    const entries = lutEntries(lut!);
    const shift = (lut!.bitsPerEntry || 16) > 8 ? (lut!.bitsPerEntry || 16) - 8 : 0;
    return { entries, first: lut!.firstMappedValue, shift };
  });
  for (let i = 0; i < n; i++) {
    const v = pixels[i]!;
    const o = i * 4;
    for (let ch = 0; ch < 3; ch++) {
      const t = tables[ch]!;
      rgba[o + ch] = lookup(t.entries, t.first, v) >> t.shift;
    }
    rgba[o + 3] = 255;
  }
}
