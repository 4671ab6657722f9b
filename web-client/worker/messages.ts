// What the page and the decode workers say to each other.
import type { DecodeError, DecodeInstance, DecodeOptions, PixelArray, RescaledArray } from '../decode/decode-frame.js';

/** The options that cross to a worker (a Decoders table holds functions: it stays on each side). */
export type WorkerDecodeOptions = Omit<DecodeOptions, 'decoders'>;

/** Load these transfer syntaxes' codecs now (no answer): the first frames then do not wait for them. */
export interface PrepareRequest {
  prepare: string[];
}

export interface DecodeRequest {
  id: number;
  bytes: Uint8Array;
  instance: DecodeInstance;
  options?: WorkerDecodeOptions;
}

export type DecodeResponse =
  | { id: number; pixels: PixelArray | RescaledArray; colourSpace?: string; rescaled?: { min: number; max: number; scaled: boolean }; error?: undefined }
  | { id: number; pixels?: undefined; error: { message: string; code: DecodeError['code'] } };
