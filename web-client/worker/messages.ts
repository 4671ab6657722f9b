// What the page and the decode workers say to each other.
import type { DecodeInstance, DecodeOptions, PixelArray } from '../decode/decode-frame.js';

export interface DecodeRequest {
  id: number;
  bytes: Uint8Array;
  instance: DecodeInstance;
  options?: DecodeOptions;
}

export type DecodeResponse =
  | { id: number; pixels: PixelArray; colourSpace?: string; error?: undefined }
  | { id: number; pixels?: undefined; error: { message: string; code: string } };
