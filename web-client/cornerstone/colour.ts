// Colour frames as Cornerstone's DICOM image loader hands them over: 8-bit RGB, 3 samples a
// pixel. Native YBR_FULL and YBR_FULL_422 are converted and PALETTE COLOR looked up with that
// loader's own arithmetic (its coefficients, Uint8ClampedArray rounding), so that an app sees the
// same values whichever loader fetched the frame. Decoders that already produce RGB (JPEG, J2K)
// are passed through.
import type { ImageAttributes } from '../../shared/protocol.js';
import type { PixelArray } from '../decode/index.js';
import { lookup, lutEntries } from '../render/lookup-table.js';

export type CornerstoneColour = Uint8Array | Uint16Array | Uint8ClampedArray;

/** The frame's RGB samples; `space` is what the decoded samples are (the decoder's, else the file's). */
export function cornerstoneColour(pixels: PixelArray, space: string, instance: Pick<ImageAttributes, 'rows' | 'columns' | 'planarConfiguration' | 'redPalette' | 'greenPalette' | 'bluePalette'>): CornerstoneColour {
  const n = instance.rows * instance.columns;
  if (space === 'PALETTE COLOR') return paletteToRgb(pixels, instance, n);
  if (space === 'YBR_FULL_422' && pixels.length === n * 2) return ybr422ToRgb(pixels, n);
  if (space === 'YBR_FULL') return ybrToRgb(pixels, n);
  // Frames stored by plane reach Cornerstone through its colour conversion, as clamped bytes.
  if (instance.planarConfiguration === 1 && pixels instanceof Uint8Array) return new Uint8ClampedArray(pixels.buffer, pixels.byteOffset, pixels.length);
  return pixels as CornerstoneColour;
}

// ITU-R BT.601 full range with the loader's rounded coefficients.
function ybrToRgb(ybr: PixelArray, n: number): Uint8ClampedArray {
  const rgb = new Uint8ClampedArray(n * 3);
  for (let p = 0; p < n * 3; p += 3) {
    const y = ybr[p]!; const cb = ybr[p + 1]! - 128; const cr = ybr[p + 2]! - 128;
    rgb[p] = y + 1.402 * cr;
    rgb[p + 1] = y - 0.34414 * cb - 0.71414 * cr;
    rgb[p + 2] = y + 1.772 * cb;
  }
  return rgb;
}

/** Y1 Y2 Cb Cr for each pair of pixels. */
function ybr422ToRgb(ybr: PixelArray, n: number): Uint8ClampedArray {
  const rgb = new Uint8ClampedArray(n * 3);
  for (let p = 0, o = 0; p < n * 2; p += 4) {
    const cb = ybr[p + 2]! - 128; const cr = ybr[p + 3]! - 128;
    for (const y of [ybr[p]!, ybr[p + 1]!]) {
      rgb[o++] = y + 1.402 * cr;
      rgb[o++] = y - 0.34414 * cb - 0.71414 * cr;
      rgb[o++] = y + 1.772 * cb;
    }
  }
  return rgb;
}

function paletteToRgb(indices: PixelArray, instance: Pick<ImageAttributes, 'redPalette' | 'greenPalette' | 'bluePalette'>, n: number): Uint8ClampedArray {
  const rgb = new Uint8ClampedArray(n * 3);
  const channels = [instance.redPalette, instance.greenPalette, instance.bluePalette];
  if (channels.some((c) => !c)) return rgb;
  const tables = channels.map((lut) => {
    const entries = lutEntries(lut!);
    // 16-bit tables are cut to their high byte, unless every entry already fits in 8 bits.
    const shift = (lut!.bitsPerEntry || 16) > 8 && entries.some((v) => v > 255) ? 8 : 0;
    return { entries, first: lut!.firstMappedValue, shift };
  });
  for (let i = 0, o = 0; i < n; i++) {
    for (const t of tables) rgb[o++] = lookup(t.entries, t.first, indices[i]!) >> t.shift;
  }
  return rgb;
}
