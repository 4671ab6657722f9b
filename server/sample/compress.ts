// Lossless encoders for the sample's compressed series: JPEG-LS (CharLS) and JPEG 2000
// (OpenJPEG), from the same WASM packages the client decodes with, run in-process at first start.
// Loaded only then: every other start of the server does without them.
import type CharLS from '@cornerstonejs/codec-charls/wasmjs';

export const JPEG_LS_LOSSLESS = '1.2.840.10008.1.2.4.80';
export const JPEG_2000_LOSSLESS = '1.2.840.10008.1.2.4.90';

export interface GreyFrame { pixels: Uint16Array; rows: number; columns: number }

type Encoder = Awaited<ReturnType<typeof CharLS>>['JpegLSEncoder'] extends new () => infer E ? E : never;

function encodeWith(encoder: Encoder, frame: GreyFrame): Uint8Array {
  try {
    const input = encoder.getDecodedBuffer({ width: frame.columns, height: frame.rows, bitsPerSample: 16, componentCount: 1, isSigned: false, isUsingColorTransform: false });
    new Uint16Array(input.buffer, input.byteOffset, frame.pixels.length).set(frame.pixels);
    encoder.encode();
    return encoder.getEncodedBuffer().slice(); // a copy: the codec's memory is freed below
  } finally {
    encoder.delete();
  }
}

// A new object each time: Emscripten makes the options object its Module and fills it in.
const quiet = () => ({ print: () => undefined, printErr: () => undefined });

/** A JPEG-LS lossless encoder for 16-bit unsigned grey frames. */
export async function jpegLsEncoder(): Promise<(frame: GreyFrame) => Uint8Array> {
  const { default: load } = await import('@cornerstonejs/codec-charls/wasmjs');
  const codec = await load(quiet());
  return (frame) => encodeWith(new codec.JpegLSEncoder(), frame);
}

/** A JPEG 2000 lossless (reversible 5/3) encoder for 16-bit unsigned grey frames. */
export async function jpeg2000Encoder(): Promise<(frame: GreyFrame) => Uint8Array> {
  const { default: load } = await import('@cornerstonejs/codec-openjpeg/wasmjs');
  const codec = await load(quiet());
  return (frame) => {
    const encoder = new codec.J2KEncoder();
    encoder.setQuality(true, 0);
    return encodeWith(encoder, frame);
  };
}
