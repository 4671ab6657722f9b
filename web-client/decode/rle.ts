// RLE Lossless frames (PS3.5 Annex G): a 64-byte header (segment count, then 15 segment offsets,
// little-endian uint32) and one PackBits segment per byte of each sample. Segments go sample by
// sample, and within a sample most significant byte first: 16-bit grey is [high, low]; 8-bit RGB
// is [R, G, B]; 16-bit RGB is [R high, R low, G high, G low, B high, B low]. The decoded frame
// is interleaved little-endian samples, whatever the Planar Configuration says.
import { DecodeError } from './errors.js';
import type { FrameLayout } from './frame-layout.js';
import { unpackBits } from './packbits.js';
import { normaliseBits, pixelView, type PixelArray } from './pixels.js';

const HEADER_BYTES = 64;
const MAX_SEGMENTS = 15;

const corrupt = (message: string) => new DecodeError('CORRUPT_FRAME', `RLE frame: ${message}`);

/** The [start, end) byte range of each segment, after checking the header against the frame. */
export function rleSegments(bytes: Uint8Array, expectedSegments: number): Array<[number, number]> {
  if (bytes.length < HEADER_BYTES) throw corrupt(`${bytes.length} bytes, shorter than its ${HEADER_BYTES}-byte header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const count = view.getUint32(0, true);
  if (count < 1 || count > MAX_SEGMENTS) throw corrupt(`header says ${count} segments (1..${MAX_SEGMENTS} allowed)`);
  if (count !== expectedSegments) throw corrupt(`header says ${count} segments, the image needs ${expectedSegments}`);
  const starts: number[] = [];
  for (let s = 0; s < count; s++) {
    const start = view.getUint32(4 + 4 * s, true);
    const previous = s === 0 ? HEADER_BYTES : starts[s - 1]!;
    if (start < previous || start > bytes.length) {
      throw corrupt(`segment ${s + 1} offset ${start} is outside ${previous}..${bytes.length}`);
    }
    starts.push(start);
  }
  return starts.map((start, s) => [start, s + 1 < count ? starts[s + 1]! : bytes.length]);
}

export function decodeRle(bytes: Uint8Array, layout: FrameLayout): PixelArray {
  const { bitsAllocated, samplesPerPixel } = layout;
  if (bitsAllocated === 1) throw new DecodeError('BAD_ATTRIBUTES', 'RLE Lossless cannot hold Bits Allocated 1');
  const sampleBytes = bitsAllocated / 8;
  const pixelCount = layout.rows * layout.columns;
  const segments = rleSegments(bytes, samplesPerPixel * sampleBytes);
  const stride = samplesPerPixel * sampleBytes;
  const out = new Uint8Array(pixelCount * stride);
  segments.forEach(([start, end], s) => {
    const sample = Math.floor(s / sampleBytes);
    // Segment order is most significant byte first; the output is little-endian.
    const byteInSample = sampleBytes - 1 - (s % sampleBytes);
    const written = unpackBits(bytes.subarray(start, end), out, sample * sampleBytes + byteInSample, stride, pixelCount);
    if (written < pixelCount) throw corrupt(`segment ${s + 1} of ${segments.length} decodes to ${written} of ${pixelCount} bytes`);
  });
  // A fresh buffer at offset 0: aligned for any sample size, and ours to normalise in place.
  return normaliseBits(pixelView(out, bitsAllocated, layout.signed), layout.bitsStored, bitsAllocated, layout.signed, true);
}
