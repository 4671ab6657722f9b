// A native frame as DICOMweb gives it: starting on a byte (a 1-bit frame of a multi-frame image
// may start inside one), and in little-endian byte order when Explicit VR Little Endian is asked
// of a big-endian file. Frames needing neither change are returned as they are (no copy).
import type { ImageAttributes } from '../../shared/protocol.js';

/** The frame's bits moved to start at bit 0 of its first byte, unused bits of the last byte zero. */
export function byteAligned(bytes: Uint8Array, bitOffset: number, frameBits: number): Uint8Array {
  const length = Math.ceil(frameBits / 8);
  if (bitOffset === 0 && frameBits % 8 === 0) return bytes.subarray(0, length);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = ((bytes[i]! >> bitOffset) | ((bytes[i + 1] ?? 0) << (8 - bitOffset))) & 0xff;
  const tail = frameBits % 8;
  if (tail) out[length - 1]! &= (1 << tail) - 1;
  return out;
}

/** Swaps each sample's bytes (16, 32 or 64 bits a sample) into a new array. */
export function swappedSamples(bytes: Uint8Array, sampleBytes: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i + sampleBytes <= bytes.length; i += sampleBytes) {
    for (let j = 0; j < sampleBytes; j++) out[i + j] = bytes[i + sampleBytes - 1 - j]!;
  }
  return out;
}

/** A native frame as read from the file, made byte-aligned and, with `toLittleEndian`, swapped. */
export function nativeFrame(bytes: Uint8Array, image: ImageAttributes, bitOffset: number, toLittleEndian: boolean): Uint8Array {
  if (image.bitsAllocated === 1) {
    const samples = image.samplesPerPixel || 1;
    return byteAligned(bytes, bitOffset, image.rows * image.columns * samples);
  }
  const sampleBytes = image.bitsAllocated / 8;
  return toLittleEndian && image.bigEndian && sampleBytes > 1 ? swappedSamples(bytes, sampleBytes) : bytes;
}
