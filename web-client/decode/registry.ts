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
