// Decodes one frame's bytes as the server sent them into the stored pixel values: native frames
// here, encapsulated ones by the decoder registered for their transfer syntax.
import { DecodeError } from './errors.js';
import { frameLayout, frameSyntax, type DecodeInstance } from './frame-layout.js';
import { decodeNative } from './native.js';
import type { PixelArray } from './pixels.js';
import { defaultDecoders, type Decoders } from './decoders.js';
import { rescale, type Rescale, type RescaledPixels } from './rescale.js';

export { DecodeError, type DecodeErrorCode } from './errors.js';
export type { DecodeInstance } from './frame-layout.js';
export type { PixelArray } from './pixels.js';
export type { Rescale, RescaledArray, RescaledPixels } from './rescale.js';

export interface DecodedFrame {
  /**
   * Samples row by row, colour interleaved, bits above Bits Stored normalised; for Bits
   * Allocated 1, the packed bits (8 pixels a byte, least significant bit first). For native
   * frames this may be a view of the bytes passed in (see native.ts).
   */
  pixels: PixelArray;
  /**
   * The photometric interpretation of `pixels` when decoding changed it from the instance's (a
   * JPEG or JPEG 2000 codec returns YBR_FULL_422, YBR_ICT or YBR_RCT data as RGB); absent otherwise.
   */
  colourSpace?: string;
}

export interface DecodeOptions {
  /** Bits Allocated 1: the bit of the first byte where the frame starts (the server's bitOffset). */
  bitOffset?: number;
  /** The decoders of compressed frames to use (default: the module's own, which registerDecoder changes). */
  decoders?: Decoders;
  /**
   * Grey frames: apply the modality LUT (slope, intercept, then a factor) where the frame is
   * decoded (in a worker, in browsers); the answer is then a RescaledFrame (rescale.ts).
   */
  rescale?: Rescale;
  /**
   * The bytes are the decoder's to overwrite (a decode worker's own copy, or a frame nobody reads
   * again): a native frame's pixels can then be normalised and rescaled where they lie.
   */
  consume?: boolean;
}

/** A grey frame decoded with the `rescale` option: its values rescaled, and their range. */
export interface RescaledFrame extends RescaledPixels {
  colourSpace?: undefined;
}

/** Decodes one frame's bytes as the server sent them (with `rescale`: and applies the modality LUT). */
export function decodeFrame(bytes: Uint8Array, instance: DecodeInstance, options: DecodeOptions & { rescale: Rescale }): Promise<RescaledFrame>;
export function decodeFrame(bytes: Uint8Array, instance: DecodeInstance, options?: DecodeOptions): Promise<DecodedFrame>;
export async function decodeFrame(bytes: Uint8Array, instance: DecodeInstance, options: DecodeOptions = {}): Promise<DecodedFrame | RescaledFrame> {
  if (!options.rescale) return decodeStored(bytes, instance, options);
  if (!rescalable(instance)) {
    throw new DecodeError('BAD_ATTRIBUTES', `rescale applies to grey frames, not ${instance.photometricInterpretation} with ${instance.bitsAllocated}-bit samples`);
  }
  const { pixels } = await decodeStored(bytes, instance, options);
  // Pixels in memory of their own (a codec's output, a copy) or in bytes that may be overwritten.
  return rescale(pixels, options.rescale, options.consume === true || pixels.buffer !== bytes.buffer);
}

/** Frames `rescale` applies to: one sample a pixel, more than one bit, not a palette. */
export function rescalable(instance: DecodeInstance): boolean {
  return (instance.samplesPerPixel || 1) === 1 && instance.bitsAllocated > 1 && instance.photometricInterpretation !== 'PALETTE COLOR';
}

async function decodeStored(bytes: Uint8Array, instance: DecodeInstance, options: DecodeOptions): Promise<DecodedFrame> {
  const syntax = frameSyntax(instance);
  const bitOffset = options.bitOffset ?? 0;
  // Not encapsulated covers the native syntaxes, deflated ones (sent inflated) and native data
  // found in a nominally compressed syntax (the server flags it encapsulated: false).
  if (syntax.encapsulated === false) {
    return { pixels: decodeNative(bytes, frameLayout(instance, syntax), bitOffset, options.consume === true) };
  }
  const loading = syntax.encapsulated ? (options.decoders ?? defaultDecoders).load(syntax.uid) : undefined;
  if (!loading) {
    throw new DecodeError('UNSUPPORTED_TRANSFER_SYNTAX', `cannot decode ${syntax.name} (${syntax.uid || 'no UID'}) frames: no decoder for this transfer syntax`);
  }
  const layout = frameLayout(instance, syntax);
  if (bitOffset !== 0) throw new DecodeError('BAD_ATTRIBUTES', `bit offset ${bitOffset} given for an encapsulated frame`);
  const decode = await loading;
  const out = await decode(bytes, layout);
  return ArrayBuffer.isView(out) ? { pixels: out } : out.colourSpace ? { pixels: out.pixels, colourSpace: out.colourSpace } : { pixels: out.pixels };
}
