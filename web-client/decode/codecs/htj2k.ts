// High-Throughput JPEG 2000 frames (1.2.840.10008.1.2.4.201 Lossless Only, …4.202 RPCL Lossless
// Only, …4.203) decoded with OpenJPH. OpenJPEG (jpeg2000.ts) takes what OpenJPH cannot do or
// gets wrong in this build:
// - a plain JPEG 2000 codestream (OpenJPH returns 0 × 0 for one);
// - colour without the colour transform (the build pulls such components plane by plane but
//   writes them as if interleaved line by line: rows of the wrong component);
// - subsampled components (written at full width);
// - a codestream OpenJPH fails on.
// A colour frame coded with the colour transform comes back as RGB, as from JPEG 2000.
import OpenJPH from '@cornerstonejs/codec-openjph/wasmjs';
import type { FrameLayout } from '../frame-layout.js';
import { DecodeError } from '../errors.js';
import type { PixelArray } from '../pixels.js';
import type { CodecOutput } from '../decoders.js';
import { asOutput, checkJ2kHeader, decodeWithOpenJpeg, errorText, fitSamples, ownedBytes, readJ2kHeader, type J2kHeader } from './jpeg2000.js';
import { startCodec } from './wasm-module.js';

const WHAT = 'HTJ2K';

/** Why OpenJPH is not tried on this codestream, or '' when it is. */
function notForOpenJph(header: J2kHeader): string {
  const why = !header.highThroughput ? 'not a High-Throughput codestream (Rsiz bit 14 clear)'
    : header.components.length > 1 && !header.mct ? 'colour without the colour transform'
    : header.components.some((c) => c.dx !== 1 || c.dy !== 1) ? 'subsampled components'
    : '';
  return why && `not tried with OpenJPH: ${why}`;
}

export async function decodeHtj2k(bytes: Uint8Array, layout: FrameLayout): Promise<PixelArray | CodecOutput> {
  const header = readJ2kHeader(bytes, WHAT);
  checkJ2kHeader(header, layout, WHAT);
  let failure = notForOpenJph(header);
  if (!failure) {
    const codec = await startCodec(OpenJPH, () => new URL('./codecs/openjphjs.wasm', import.meta.url));
    const decoder = new codec.HTJ2KDecoder();
    let info;
    let samples: Uint8Array | undefined;
    try {
      decoder.getEncodedBuffer(bytes.length).set(bytes);
      decoder.decode();
      info = decoder.getFrameInfo();
      if (info.width === 0 || info.height === 0) failure = 'OpenJPH returned 0 × 0';
      else samples = ownedBytes(decoder.getDecodedBuffer(), codec.HEAPU8);
    } catch (e) {
      failure = `OpenJPH failed: ${errorText(e)}`;
    } finally {
      decoder.delete();
    }
    if (samples && info) {
      if (info.width === layout.columns && info.height === layout.rows && info.componentCount === layout.samplesPerPixel) {
        return asOutput(fitSamples(samples, info.bitsPerSample, info.isSigned, layout, WHAT), info.componentCount === 3 && info.isUsingColorTransform);
      }
      failure = `OpenJPH decoded ${info.width} × ${info.height} × ${info.componentCount} samples`;
    }
  }
  try {
    return await decodeWithOpenJpeg(bytes, layout, WHAT, header);
  } catch (e) {
    // Say why OpenJPH was not the answer either.
    if (e instanceof DecodeError) throw new DecodeError(e.code, `${e.message} (${failure})`);
    throw e;
  }
}
