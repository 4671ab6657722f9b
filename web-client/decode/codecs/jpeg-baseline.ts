// 8-bit sequential DCT frames (JPEG Baseline, and 8-bit frames under JPEG Extended), as jpeg.ts
// routes them: libjpeg-turbo's 8-bit WASM build (@cornerstonejs/codec-libjpeg-turbo-8bit).
//
// The codec has no output colour space option: it always decodes as libjpeg does by default,
// converting three components to RGB when it takes them to be YCbCr. When the image's colour
// must come out as stored (an RGB header, jpeg-output.ts chooseColour), the codestream is handed
// over with its JFIF / Adobe markers renamed to APP15 (which libjpeg skips) and an Adobe marker
// with transform 0 ("no transform") put first, so libjpeg sees RGB and converts nothing.
import libjpegTurbo from '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs';
import { DecodeError } from '../errors.js';
import type { FrameLayout } from '../frame-layout.js';
import type { PixelArray } from '../pixels.js';
import type { CodecOutput } from '../decoders.js';
import { checkFrame, chooseColour, codecOutput, framePixels } from './jpeg-output.js';
import { corruptJpeg, libjpegSeesYcbcr, type JpegHeader } from './jpeg-stream.js';
import { startCodec } from './wasm-module.js';

/** libjpeg-turbo's module, started on first use. */
export function libjpegTurboCodec(): ReturnType<typeof libjpegTurbo> {
  return startCodec(libjpegTurbo, () => new URL('./codecs/libjpegturbowasm_decode.wasm', import.meta.url));
}

/** An 8-bit sequential DCT frame whose sampling libjpeg-turbo decodes as the references (jpeg.ts decides). */
export async function decodeBaselineFrame(bytes: Uint8Array, layout: FrameLayout, header: JpegHeader, label: string): Promise<PixelArray | CodecOutput> {
  checkFrame(header.frame, layout, label);
  const colour = chooseColour(header, layout);
  const stream = !colour.convert && libjpegSeesYcbcr(header) ? withoutColourTransform(bytes, header) : bytes;

  const codec = await libjpegTurboCodec();
  const decoder = new codec.JPEGDecoder();
  let samples: Uint8ClampedArray;
  try {
    decoder.getEncodedBuffer(stream.length).set(stream);
    decoder.decode();
    const info = decoder.getFrameInfo();
    if (info.width !== layout.columns || info.height !== layout.rows || info.componentCount !== layout.samplesPerPixel) {
      throw corruptJpeg(label, `libjpeg-turbo decoded ${info.width} × ${info.height} × ${info.componentCount}, the image is ${layout.columns} × ${layout.rows} × ${layout.samplesPerPixel}`);
    }
    samples = decoder.getDecodedBuffer(); // a copy, out of the WASM memory
  } catch (e) {
    if (e instanceof DecodeError) throw e;
    // libjpeg's errors reach JavaScript as a bare number (a C++ exception pointer).
    throw corruptJpeg(label, `libjpeg-turbo could not decode it (${e instanceof Error ? e.message : `error ${String(e)}`})`);
  } finally {
    decoder.delete();
  }
  const pixels = framePixels(new Uint8Array(samples.buffer, samples.byteOffset, samples.length), layout, label);
  return codecOutput(pixels, colour);
}

/** The Adobe APP14 segment with transform 0: the three components are not colour-transformed. */
const ADOBE_NO_TRANSFORM = Uint8Array.of(
  0xff, 0xee, 0x00, 0x0e, 0x41, 0x64, 0x6f, 0x62, 0x65, // marker, length 14, "Adobe"
  0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, // version 100, flags 0 and 1, transform 0
);

/** The codestream as libjpeg will decode without colour conversion (see the top of this file). */
export function withoutColourTransform(bytes: Uint8Array, header: JpegHeader): Uint8Array {
  const out = new Uint8Array(bytes.length + ADOBE_NO_TRANSFORM.length);
  out.set(bytes.subarray(0, 2), 0); // SOI
  out.set(ADOBE_NO_TRANSFORM, 2);
  out.set(bytes.subarray(2), 2 + ADOBE_NO_TRANSFORM.length);
  for (const at of header.colourMarkers) out[at + ADOBE_NO_TRANSFORM.length] = 0xef; // APP0 / APP14 → APP15
  return out;
}
