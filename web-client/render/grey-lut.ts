// The grey pipeline of PS3.3 C.11: stored value -> Modality LUT (rescale or LUT Sequence) ->
// VOI LUT (window with LINEAR / LINEAR_EXACT / SIGMOID, or a VOI LUT Sequence) -> 8-bit display,
// inverted for MONOCHROME1. Built once per window as a table over the stored values, so a
// redraw is one table lookup per pixel.
import type { ImageAttributes, LookupTable } from '../../shared/protocol.js';
import { lookup, lutEntries } from './lookup-table.js';

export interface Window {
  center: number;
  width: number;
}

export interface GreyOptions {
  /** A window; when absent, a VOI LUT Sequence (voiLutIndex) or the frame's range is used. */
  window?: Window;
  /** Which VOI LUT of the sequence, when no window is given. */
  voiLutIndex?: number;
  /** Invert on top of what the photometric interpretation says. */
  invert?: boolean;
}

export type GreyInstance = Pick<ImageAttributes,
  'bitsStored' | 'pixelRepresentation' | 'photometricInterpretation' | 'hasRescale' | 'rescaleSlope' | 'rescaleIntercept' |
  'modalityLut' | 'voiLuts' | 'voiLutFunction'>;

/** The modality transform: stored value to output units (e.g. HU). */
export function modalityTransform(instance: GreyInstance): (stored: number) => number {
  const lut = instance.modalityLut;
  if (lut && lut.numberOfEntries) {
    const entries = lutEntries(lut);
    return (v) => lookup(entries, lut.firstMappedValue, v);
  }
  const slope = instance.hasRescale && instance.rescaleSlope ? instance.rescaleSlope : 1;
  const intercept = instance.hasRescale ? instance.rescaleIntercept : 0;
  return (v) => v * slope + intercept;
}

/** The VOI function for a window, to 0..255. */
export function windowFunction(window: Window, fn: string): (x: number) => number {
  const c = window.center;
  const f = fn.trim().toUpperCase();
  if (f === 'SIGMOID') {
    const w = Math.max(window.width, Number.MIN_VALUE);
    return (x) => 255 / (1 + Math.exp((-4 * (x - c)) / w));
  }
  if (f === 'LINEAR_EXACT') {
    const w = Math.max(window.width, Number.MIN_VALUE);
    return (x) => (x <= c - w / 2 ? 0 : x > c + w / 2 ? 255 : ((x - c) / w + 0.5) * 255);
  }
  // LINEAR (the default): width below 1 is not valid; treat it as 1.
  const w = Math.max(window.width, 1);
  const low = c - 0.5 - (w - 1) / 2;
  const high = c - 0.5 + (w - 1) / 2;
  return (x) => (x <= low ? 0 : x > high ? 255 : ((x - (c - 0.5)) / (w - 1) + 0.5) * 255);
}

function voiSequenceFunction(lut: LookupTable): (x: number) => number {
  const entries = lutEntries(lut);
  const max = 2 ** (lut.bitsPerEntry || 16) - 1;
  return (x) => (lookup(entries, lut.firstMappedValue, Math.round(x)) / max) * 255;
}

/** The range of stored values the image can hold. */
export function storedRange(instance: Pick<ImageAttributes, 'bitsStored' | 'pixelRepresentation'>): { min: number; max: number } {
  const bits = Math.min(instance.bitsStored || 16, 32);
  return instance.pixelRepresentation === 1 ? { min: -(2 ** (bits - 1)), max: 2 ** (bits - 1) - 1 } : { min: 0, max: 2 ** bits - 1 };
}

/** stored value -> display grey (0..255), as a function. */
export function greyFunction(instance: GreyInstance, options: GreyOptions): (stored: number) => number {
  const modality = modalityTransform(instance);
  const voiLut = options.window ? undefined : instance.voiLuts[options.voiLutIndex ?? 0];
  const voi = options.window
    ? windowFunction(options.window, instance.voiLutFunction || 'LINEAR')
    : voiLut ? voiSequenceFunction(voiLut) : (x: number) => x;
  const invert = (instance.photometricInterpretation === 'MONOCHROME1') !== Boolean(options.invert);
  return (v) => {
    const y = Math.round(voi(modality(v)));
    const g = y < 0 ? 0 : y > 255 ? 255 : y;
    return invert ? 255 - g : g;
  };
}

/** The same as a table indexed by stored value - min; undefined where the range is too wide for one. */
export function greyTable(instance: GreyInstance, options: GreyOptions): { table: Uint8Array; min: number } | undefined {
  const { min, max } = storedRange(instance);
  if (max - min + 1 > 1 << 16) return undefined;
  const f = greyFunction(instance, options);
  const table = new Uint8Array(max - min + 1);
  for (let v = min; v <= max; v++) table[v - min] = f(v);
  return { table, min };
}
