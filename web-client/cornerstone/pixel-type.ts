// The array Cornerstone's DICOM image loader gives a frame: the smallest integer type holding its
// (modality-LUT-applied) values, else Float32Array; and the values in it.
import type { PixelArray } from '../decode/index.js';
import { minMax } from '../decode/pixels.js';

export type CornerstonePixels = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Float32Array;
type PixelConstructor = new (length: number) => CornerstonePixels;

/** As getPixelDataTypeFromMinMax in @cornerstonejs/dicom-image-loader. */
export function pixelTypeFor(min: number, max: number): PixelConstructor {
  if (Number.isInteger(min) && Number.isInteger(max)) {
    if (min >= 0) {
      if (max <= 255) return Uint8Array;
      if (max <= 65535) return Uint16Array;
      if (max <= 4294967295) return Uint32Array;
    } else {
      if (min >= -128 && max <= 127) return Int8Array;
      if (min >= -32768 && max <= 32767) return Int16Array;
    }
  }
  return Float32Array;
}

/**
 * Stored values scaled by slope and intercept (when they change anything) into the type that holds
 * the results, as Cornerstone prescales; then by `suvbw` for a PT image with SUV factors (in
 * Cornerstone's order of operations, so that float32 rounding is the same); the range of the values returned.
 */
export function prescaled(stored: PixelArray, slope: number, intercept: number, suvbw?: number): { pixels: CornerstonePixels; min: number; max: number; scaled: boolean } {
  const raw = minMax(stored);
  if (suvbw !== undefined && Number.isFinite(suvbw)) {
    const ends = [suvbw * (raw.min * slope + intercept), suvbw * (raw.max * slope + intercept)];
    const out = new (pixelTypeFor(Math.min(...ends), Math.max(...ends)))(stored.length);
    for (let i = 0; i < stored.length; i++) out[i] = suvbw * (stored[i]! * slope + intercept);
    return { pixels: out, min: Math.min(...ends), max: Math.max(...ends), scaled: true };
  }
  const scaled = slope !== 1 || intercept !== 0;
  const ends = [raw.min * slope + intercept, raw.max * slope + intercept];
  const min = scaled ? Math.min(...ends) : raw.min;
  const max = scaled ? Math.max(...ends) : raw.max;
  const Type = pixelTypeFor(min, max);
  if (!scaled && stored instanceof Type) return { pixels: stored as CornerstonePixels, min, max, scaled };
  const out = new Type(stored.length);
  if (scaled) for (let i = 0; i < stored.length; i++) out[i] = stored[i]! * slope + intercept;
  else out.set(stored);
  return { pixels: out, min, max, scaled };
}
