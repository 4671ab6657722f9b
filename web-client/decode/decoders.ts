// The decoders of encapsulated (compressed) frames, per transfer syntax. Which codec decodes a
// syntax is a column of shared/transfer-syntax.ts; here each codec name maps to its module,
// imported on first use, so a viewer that never meets a syntax never downloads its codec (WASM
// codecs are 50-100 KB gzip each). A `Decoders` holds its own table and loaded codecs: an
// embedder can keep several (one with a codec of their own) without touching the default.
import { transferSyntaxes, type DecoderName } from '../../shared/transfer-syntax.js';
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

/** Each codec's module, imported when a frame first needs it (and a chunk of its own in the browser bundle). */
export const CODEC_LOADERS: Readonly<Record<DecoderName, DecoderLoader>> = {
  rle: async () => (await import('./rle.js')).decodeRle,
  jpeg: async () => (await import('./codecs/jpeg.js')).decodeJpeg,
  'jpeg-ls': async () => (await import('./codecs/jpeg-ls.js')).decodeJpegLs,
  jpeg2000: async () => (await import('./codecs/jpeg2000.js')).decodeJpeg2000,
  htj2k: async () => (await import('./codecs/htj2k.js')).decodeHtj2k,
};

export class Decoders {
  private readonly loaders = new Map<string, DecoderLoader>();
  private readonly loading = new Map<string, Promise<FrameDecoder>>();

  /** Starts with the built-in codec of every syntax the transfer syntax table gives one. */
  constructor() {
    for (const { uid, decoder } of transferSyntaxes()) if (decoder) this.loaders.set(uid, CODEC_LOADERS[decoder]);
  }

  /** Adds or replaces the decoder of a transfer syntax. */
  register(transferSyntaxUid: string, loader: DecoderLoader): void {
    this.loaders.set(transferSyntaxUid, loader);
    this.loading.delete(transferSyntaxUid);
  }

  has(transferSyntaxUid: string): boolean {
    return this.loaders.has(transferSyntaxUid);
  }

  /** The decoder of a syntax, loaded once; undefined when none is registered. */
  load(transferSyntaxUid: string): Promise<FrameDecoder> | undefined {
    const pending = this.loading.get(transferSyntaxUid);
    if (pending) return pending;
    const loader = this.loaders.get(transferSyntaxUid);
    if (!loader) return undefined;
    const promise = loader();
    this.loading.set(transferSyntaxUid, promise);
    // A failed load (network, WASM compile) is not remembered: the next frame tries again.
    promise.catch(() => { if (this.loading.get(transferSyntaxUid) === promise) this.loading.delete(transferSyntaxUid); });
    return promise;
  }
}

/** The decoders `decodeFrame`, `registerDecoder` and `hasDecoder` use. */
export const defaultDecoders = new Decoders();

/** Adds or replaces the decoder of a transfer syntax in the default decoders. */
export function registerDecoder(transferSyntaxUid: string, loader: DecoderLoader): void {
  defaultDecoders.register(transferSyntaxUid, loader);
}

export function hasDecoder(transferSyntaxUid: string): boolean {
  return defaultDecoders.has(transferSyntaxUid);
}
