// The modality LUT applied where the frame is decoded (a worker, off the page's main thread), as
// Cornerstone's DICOM image loader prescales: stored values × slope + intercept (× a factor: a PET
// image's SUVbw), in the smallest integer array that holds the results, else Float32Array.
import { minMax, type PixelArray } from './pixels.js';

/** Slope and intercept (Rescale Slope/Intercept), and a factor applied after them (SUV). */
export interface Rescale {
  slope: number;
  intercept: number;
  factor?: number;
}

export type RescaledArray = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Float32Array;
interface RescaledConstructor {
  new (length: number): RescaledArray;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): RescaledArray;
  readonly BYTES_PER_ELEMENT: number;
}

/** A frame's values with its Rescale applied, and their range. */
export interface RescaledPixels {
  pixels: RescaledArray;
  min: number;
  max: number;
  /** False when the rescale changed nothing (the stored values, in the type that holds them). */
  scaled: boolean;
}

/** As getPixelDataTypeFromMinMax in @cornerstonejs/dicom-image-loader. */
export function arrayTypeFor(min: number, max: number): RescaledConstructor {
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
 * Stored values scaled by slope and intercept (when they change anything), then by `factor` when
 * given (in Cornerstone's order of operations, so that float32 rounding is the same). `inPlace`:
 * `stored` is the caller's to overwrite, and the results go into its memory when their type has
 * the same size (a CT's Uint16 or Int16 into Int16): no second frame-sized buffer.
 */
export function rescale(stored: PixelArray, { slope, intercept, factor }: Rescale, inPlace = false): RescaledPixels {
  const raw = minMax(stored);
  const suv = factor !== undefined && Number.isFinite(factor);
  const scaled = suv || slope !== 1 || intercept !== 0;
  const ends = suv ? [factor * (raw.min * slope + intercept), factor * (raw.max * slope + intercept)] : [raw.min * slope + intercept, raw.max * slope + intercept];
  const min = scaled ? Math.min(...ends) : raw.min;
  const max = scaled ? Math.max(...ends) : raw.max;
  const Type = arrayTypeFor(min, max);
  if (!scaled && stored instanceof Type) return { pixels: stored as RescaledArray, min, max, scaled };
  // Each element is read before the same element is written: the two views may share memory.
  const out = inPlace && Type.BYTES_PER_ELEMENT === stored.BYTES_PER_ELEMENT ? new Type(stored.buffer, stored.byteOffset, stored.length) : new Type(stored.length);
  if (suv) for (let i = 0; i < stored.length; i++) out[i] = factor * (stored[i]! * slope + intercept);
  else if (scaled) for (let i = 0; i < stored.length; i++) out[i] = stored[i]! * slope + intercept;
  else out.set(stored);
  return { pixels: out, min, max, scaled };
}
