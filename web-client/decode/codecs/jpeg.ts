// Every JPEG frame (T.81) enters here, whatever its transfer syntax says: the header is read once
// and its frame marker and precision pick the decoder, since DICOM files do not always hold the
// process their syntax names (a lossless syntax with a DCT stream, 8-bit frames under Extended).
//   8-bit sequential DCT in a layout libjpeg-turbo decodes as the references → jpeg-baseline.ts (WASM)
//   other sequential DCT (12-bit, rarer sampling layouts)                    → jpeg-extended.ts
//   lossless Huffman (SOF3)                                                  → jpeg-lossless.ts
// Each is imported on first use, so a viewer of lossless frames never downloads the WASM codec.
import type { FrameLayout } from '../frame-layout.js';
import type { PixelArray } from '../pixels.js';
import type { CodecOutput } from '../decoders.js';
import { SOF0, SOF1, SOF3, corruptJpeg, processName, readJpegHeader, type JpegFrameHeader } from './jpeg-stream.js';

const LABELS: Record<number, string> = { [SOF0]: 'JPEG Baseline frame', [SOF1]: 'JPEG Extended frame', [SOF3]: 'JPEG Lossless frame' };

export type JpegRoute = 'libjpeg-turbo' | 'dct' | 'lossless';

/** Which decoder takes a frame with this header. */
export function jpegRoute(frame: JpegFrameHeader, label = 'JPEG frame'): JpegRoute {
  const { marker, precision } = frame;
  if (marker === SOF3) return 'lossless';
  if (marker !== SOF0 && marker !== SOF1) throw corruptJpeg(label, `${processName(marker)} is not a process this decoder supports`);
  return precision === 8 && decodesLikeReferences(frame) ? 'libjpeg-turbo' : 'dct';
}

export async function decodeJpeg(bytes: Uint8Array, layout: FrameLayout): Promise<PixelArray | CodecOutput> {
  const header = readJpegHeader(bytes, 'JPEG frame');
  const label = LABELS[header.frame.marker] ?? 'JPEG frame';
  switch (jpegRoute(header.frame, label)) {
    case 'libjpeg-turbo': return (await import('./jpeg-baseline.js')).decodeBaselineFrame(bytes, layout, header, label);
    case 'dct': return (await import('./jpeg-extended.js')).decodeDctFrame(bytes, layout, header, label);
    case 'lossless': return (await import('./jpeg-lossless.js')).decodeLosslessFrame(bytes, layout, header, label);
  }
}

/**
 * Whether libjpeg-turbo decodes this sampling layout as IJG libjpeg 6b, which made the references:
 * full-size components, 2:1 across (4:2:2), 2:1 both ways (4:2:0) and 4:1 across (4:1:1). It
 * interpolates 1:2 vertical chroma (4:4:0) where 6b replicates it, and this build rejects some
 * layouts (4×2 or 2×4 luminance factors); our DCT decoder takes those.
 */
function decodesLikeReferences(frame: JpegFrameHeader): boolean {
  const hMax = Math.max(...frame.components.map((c) => c.h));
  const vMax = Math.max(...frame.components.map((c) => c.v));
  return frame.components.every(({ h, v }) => {
    const across = hMax / h;
    const down = vMax / v;
    return (down === 1 && (across === 1 || across === 2 || across === 4)) || (down === 2 && across === 2);
  });
}
