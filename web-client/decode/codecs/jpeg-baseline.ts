// JPEG Baseline (Process 1) frames, and every 8-bit DCT frame (JPEG Extended sends its 8-bit
// frames here): libjpeg-turbo's 8-bit WASM build (@cornerstonejs/codec-libjpeg-turbo-8bit).
// 12-bit frames go to our own decoder (jpeg-extended.ts), lossless ones to jpeg-lossless.ts.
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
import type { CodecOutput } from '../registry.js';
import { checkFrame, chooseColour, codecOutput, framePixels } from './jpeg-output.js';
import {
  SOF0, SOF1, SOF3, corruptJpeg, libjpegSeesYcbcr, processName, readJpegHeader, type JpegFrameHeader, type JpegHeader,
} from './jpeg-stream.js';
import { startCodec } from './wasm-module.js';

const LABEL = 'JPEG Baseline frame';

export async function decodeJpegBaseline(bytes: Uint8Array, layout: FrameLayout): Promise<PixelArray | CodecOutput> {
  const header = readJpegHeader(bytes, LABEL);
  const { marker, precision } = header.frame;
  if (marker === SOF3) return (await import('./jpeg-lossless.js')).decodeJpegLossless(bytes, layout);
  if (marker !== SOF0 && marker !== SOF1) throw corruptJpeg(LABEL, `${processName(marker)} is not a process this decoder supports`);
  if (precision !== 8 || !decodesLikeReferences(header.frame)) {
    return (await import('./jpeg-extended.js')).decodeDctFrame(bytes, layout, header, LABEL);
  }
  checkFrame(header.frame, layout, LABEL);
  const colour = chooseColour(header, layout);
  const stream = !colour.convert && libjpegSeesYcbcr(header) ? withoutColourTransform(bytes, header) : bytes;

  const codec = await startCodec(libjpegTurbo);
  const decoder = new codec.JPEGDecoder();
  let samples: Uint8ClampedArray;
  try {
    decoder.getEncodedBuffer(stream.length).set(stream);
    decoder.decode();
    const info = decoder.getFrameInfo();
    if (info.width !== layout.columns || info.height !== layout.rows || info.componentCount !== layout.samplesPerPixel) {
      throw corruptJpeg(LABEL, `libjpeg-turbo decoded ${info.width} × ${info.height} × ${info.componentCount}, the image is ${layout.columns} × ${layout.rows} × ${layout.samplesPerPixel}`);
    }
    samples = decoder.getDecodedBuffer(); // a copy, out of the WASM memory
  } catch (e) {
    if (e instanceof DecodeError) throw e;
    // libjpeg's errors reach JavaScript as a bare number (a C++ exception pointer).
    throw corruptJpeg(LABEL, `libjpeg-turbo could not decode it (${e instanceof Error ? e.message : `error ${String(e)}`})`);
  } finally {
    decoder.delete();
  }
  const pixels = framePixels(new Uint8Array(samples.buffer, samples.byteOffset, samples.length), layout, LABEL);
  return codecOutput(pixels, colour);
}

/**
 * Whether libjpeg-turbo decodes this sampling layout as IJG libjpeg 6b, which made the references:
 * full-size components, 2:1 across (4:2:2), 2:1 both ways (4:2:0) and 4:1 across (4:1:1). It
 * interpolates 1:2 vertical chroma (4:4:0) where 6b replicates it, and this build rejects some
 * layouts (4×2 or 2×4 luminance factors); our decoder takes those.
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
