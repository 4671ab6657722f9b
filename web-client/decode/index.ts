// Frame decoding for viewers: the stored pixel values of a frame as the server sent it. Pure
// functions, no DOM and no Node APIs: runs in a Web Worker, a page or Node.
export { decodeFrame, rescalable, type DecodedFrame, type DecodeOptions, type RescaledFrame } from './decode-frame.js';
export { arrayTypeFor, rescale, type Rescale, type RescaledArray, type RescaledPixels } from './rescale.js';
export { DecodeError, type DecodeErrorCode } from './errors.js';
export type { DecodeInstance, FrameLayout } from './frame-layout.js';
export { pixelBytes, type PixelArray } from './pixels.js';
export { Decoders, registerDecoder, hasDecoder, type FrameDecoder, type DecoderLoader, type CodecOutput } from './decoders.js';
