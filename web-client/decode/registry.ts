// Decoders of encapsulated (compressed) frames, keyed by transfer syntax UID. Each is loaded on
// first use, so a viewer that never meets a syntax never downloads its codec (WASM codecs are
// 50-100 KB gzip each). A later change adds JPEG, JPEG-LS, JPEG 2000… with registerDecoder or an
// entry in `loaders`; decodeFrame needs no change.
import type { FrameLayout } from './frame-layout.js';
import type { PixelArray } from './pixels.js';

/** What a codec returns: samples, and the colour space it converted them to, if it did (YBR JPEG to RGB). */
export interface CodecOutput {
  pixels: PixelArray;
  colourSpace?: string;
}

/**
 * Decodes one encapsulated frame (its fragments joined) to interleaved little-endian samples with
 * the bits above Bits Stored normalised, as the corpus references lay them out.
 */
export type FrameDecoder = (bytes: Uint8Array, layout: FrameLayout) => PixelArray | CodecOutput | Promise<PixelArray | CodecOutput>;
export type DecoderLoader = () => Promise<FrameDecoder>;

export const RLE_LOSSLESS = '1.2.840.10008.1.2.5';

const loaders = new Map<string, DecoderLoader>([
  [RLE_LOSSLESS, async () => (await import('./rle.js')).decodeRle],
  ['1.2.840.10008.1.2.4.50', async () => (await import('./codecs/jpeg-baseline.js')).decodeJpegBaseline], // JPEG Baseline
  ['1.2.840.10008.1.2.4.51', async () => (await import('./codecs/jpeg-extended.js')).decodeJpegExtended], // JPEG Extended
  ['1.2.840.10008.1.2.4.57', async () => (await import('./codecs/jpeg-lossless.js')).decodeJpegLossless], // JPEG Lossless
  ['1.2.840.10008.1.2.4.70', async () => (await import('./codecs/jpeg-lossless.js')).decodeJpegLossless], // JPEG Lossless SV1
  ['1.2.840.10008.1.2.4.80', async () => (await import('./codecs/jpeg-ls.js')).decodeJpegLs], // JPEG-LS Lossless
  ['1.2.840.10008.1.2.4.81', async () => (await import('./codecs/jpeg-ls.js')).decodeJpegLs], // JPEG-LS Near-Lossless
  ['1.2.840.10008.1.2.4.90', async () => (await import('./codecs/jpeg2000.js')).decodeJpeg2000], // JPEG 2000 Lossless Only
  ['1.2.840.10008.1.2.4.91', async () => (await import('./codecs/jpeg2000.js')).decodeJpeg2000], // JPEG 2000
  ['1.2.840.10008.1.2.4.201', async () => (await import('./codecs/htj2k.js')).decodeHtj2k], // HTJ2K Lossless Only
  ['1.2.840.10008.1.2.4.202', async () => (await import('./codecs/htj2k.js')).decodeHtj2k], // HTJ2K RPCL Lossless Only
  ['1.2.840.10008.1.2.4.203', async () => (await import('./codecs/htj2k.js')).decodeHtj2k], // HTJ2K
]);
const loading = new Map<string, Promise<FrameDecoder>>();

/** Adds or replaces the decoder of a transfer syntax. */
export function registerDecoder(transferSyntaxUid: string, loader: DecoderLoader): void {
  loaders.set(transferSyntaxUid, loader);
  loading.delete(transferSyntaxUid);
}

/** The decoder of a syntax, loaded once; undefined when none is registered. */
export function loadDecoder(transferSyntaxUid: string): Promise<FrameDecoder> | undefined {
  const pending = loading.get(transferSyntaxUid);
  if (pending) return pending;
  const loader = loaders.get(transferSyntaxUid);
  if (!loader) return undefined;
  const promise = loader();
  loading.set(transferSyntaxUid, promise);
  // A failed load (network, WASM compile) is not remembered: the next frame tries again.
  promise.catch(() => { if (loading.get(transferSyntaxUid) === promise) loading.delete(transferSyntaxUid); });
  return promise;
}

export function hasDecoder(transferSyntaxUid: string): boolean {
  return loaders.has(transferSyntaxUid);
}
