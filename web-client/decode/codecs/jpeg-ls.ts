// JPEG-LS frames (1.2.840.10008.1.2.4.80 Lossless, …4.81 Near-Lossless) decoded with CharLS.
// JPEG-LS in DICOM has no colour transform: colour comes back as stored (RGB, or YBR_FULL left as
// YBR), interleaved even when the codestream has one scan per component (interleave mode 0).
// CharLS knows nothing of signedness and its precision need not be Bits Stored (encoders write 16
// for 12-bit data): the samples are read as the header says and normalised by its Bits Stored and
// Pixel Representation, so signed data is sign-extended from Bits Stored.
import CharLS from '@cornerstonejs/codec-charls/decodewasmjs';
import { DecodeError } from '../errors.js';
import type { FrameLayout } from '../frame-layout.js';
import { normaliseBits, pixelView, type PixelArray } from '../pixels.js';
import { interleavePlanes } from '../planar.js';
import { startCodec } from './wasm-module.js';

const corrupt = (message: string) => new DecodeError('CORRUPT_FRAME', `JPEG-LS frame: ${message}`);

/** CharLS throws C++ exceptions, which reach JavaScript as a number its module can describe. */
function failure(e: unknown, describe: ((exception: number) => string) | undefined): string {
  if (typeof e === 'number' && describe) {
    try { return describe(e); } catch { /* fall through */ }
  }
  return e instanceof Error ? e.message : `CharLS error ${String(e)}`;
}

export async function decodeJpegLs(bytes: Uint8Array, layout: FrameLayout): Promise<PixelArray> {
  const { rows, columns, samplesPerPixel, bitsAllocated, bitsStored, signed } = layout;
  if (bitsAllocated === 1) throw new DecodeError('BAD_ATTRIBUTES', 'JPEG-LS cannot hold Bits Allocated 1');
  const codec = await startCodec(CharLS, () => new URL('./codecs/charlswasm_decode.wasm', import.meta.url));
  const decoder = new codec.JpegLSDecoder();
  let info;
  let interleaveMode;
  let decoded;
  try {
    decoder.getEncodedBuffer(bytes.length).set(bytes);
    decoder.decode();
    info = decoder.getFrameInfo();
    interleaveMode = decoder.getInterleaveMode();
    decoded = decoder.getDecodedBuffer();
    // Some builds return a view of the codec's memory, others a copy: keep one of our own at offset 0.
    decoded = decoded.buffer !== codec.HEAPU8.buffer && decoded.byteOffset === 0 && decoded.byteLength === decoded.buffer.byteLength
      ? new Uint8Array(decoded.buffer)
      : new Uint8Array(decoded);
  } catch (e) {
    throw corrupt(failure(e, codec.getExceptionMessage));
  } finally {
    decoder.delete();
  }
  if (info.width !== columns || info.height !== rows) throw corrupt(`the codestream is ${info.width} × ${info.height} pixels, the image ${columns} × ${rows}`);
  if (info.componentCount !== samplesPerPixel) throw corrupt(`the codestream has ${info.componentCount} components, the image ${samplesPerPixel} samples per pixel`);
  const sampleBytes = info.bitsPerSample <= 8 ? 1 : 2;
  const pixelCount = rows * columns;
  const count = pixelCount * samplesPerPixel;
  if (decoded.length !== count * sampleBytes) throw corrupt(`decoded to ${decoded.length} bytes, the image needs ${count * sampleBytes}`);
  if (samplesPerPixel > 1 && interleaveMode === 0) decoded = interleavePlanes(decoded, pixelCount, samplesPerPixel, sampleBytes);
  let pixels: PixelArray;
  if (sampleBytes * 8 === bitsAllocated) {
    pixels = pixelView(decoded, bitsAllocated, signed);
  } else {
    // Precision 8 or less in 16 bits allocated (or 9..16 in 8 or 32): each value converted, then normalised.
    const from = sampleBytes === 1 ? decoded : new Uint16Array(decoded.buffer, decoded.byteOffset, count);
    pixels = pixelView(new Uint8Array(count * (bitsAllocated / 8)), bitsAllocated, signed);
    pixels.set(from);
  }
  return normaliseBits(pixels, bitsStored, bitsAllocated, signed, true);
}
