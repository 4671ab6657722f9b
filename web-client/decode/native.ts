// Native (uncompressed) frames: little-endian, big-endian (swapped), planar (interleaved), packed
// 1-bit (re-aligned to bit 0), native YBR 4:2:2 (the stored samples, two a pixel, unchanged).
//
// Copies: the frame as received is returned as a typed array over the same memory when nothing
// has to change, which is the common case (little-endian, interleaved, clean unused bits). A copy
// is made only to swap, to interleave, to change unused high bits, or when a 16/32-bit view is
// impossible because the frame does not start on a multiple of the sample size in its buffer
// (e.g. a frame that is a view into a WebSocket message after an odd-length header). The
// returned array may therefore share memory with `bytes`: it must not be modified by a caller
// that still needs the received bytes. A caller that does not (`consume`) lets the swap and the
// clearing of unused bits happen in `bytes` itself.
import { swapBytesInPlace } from './byte-order.js';
import { DecodeError } from './errors.js';
import type { FrameLayout } from './frame-layout.js';
import { framePackedBits } from './packed-bits.js';
import { interleavePlanes } from './planar.js';
import { normaliseBits, pixelView, type PixelArray } from './pixels.js';

/** `consume`: `bytes` may be overwritten (swapped, unused bits cleared) instead of copied first. */
export function decodeNative(bytes: Uint8Array, layout: FrameLayout, bitOffset = 0, consume = false): PixelArray {
  const pixelCount = layout.rows * layout.columns;
  if (layout.bitsAllocated === 1) return framePackedBits(bytes, pixelCount * layout.samplesPerPixel, bitOffset);
  if (bitOffset !== 0) throw new DecodeError('BAD_ATTRIBUTES', `bit offset ${bitOffset} given for a frame of Bits Allocated ${layout.bitsAllocated}`);

  const sampleBytes = layout.bitsAllocated / 8;
  // Native 4:2:2 holds Y1 Y2 Cb Cr per pair of pixels: two samples a pixel, kept as stored.
  const samplesPerPixel = layout.subsampled422 ? 2 : layout.samplesPerPixel;
  const needed = pixelCount * samplesPerPixel * sampleBytes;
  if (bytes.length < needed) throw new DecodeError('CORRUPT_FRAME', `native frame has ${bytes.length} bytes, ${needed} needed`);

  // Extra bytes (a pad byte to even length) are not pixels.
  let data = bytes.subarray(0, needed);
  let owned = consume;
  if (layout.planar) {
    data = interleavePlanes(data, pixelCount, samplesPerPixel, sampleBytes);
    owned = true;
  }
  if (layout.bigEndian && sampleBytes > 1) {
    if (!owned) data = data.slice();
    owned = true;
    swapBytesInPlace(data, sampleBytes as 2 | 4);
  }
  if (data.byteOffset % sampleBytes !== 0) {
    data = data.slice();
    owned = true;
  }
  const pixels = pixelView(data, layout.bitsAllocated, layout.signed);
  return normaliseBits(pixels, layout.bitsStored, layout.bitsAllocated, layout.signed, owned);
}
