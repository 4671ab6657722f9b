// Bits Allocated 1 (segmentations, overlays in pixel data): 8 pixels a byte, least significant
// bit first. Frames of a multi-frame object follow each other bit by bit, so a frame may start
// inside a byte (the server says where: bitOffset). A decoded frame starts at bit 0 of its first
// byte and its last byte holds no bits of the next frame.
import { DecodeError } from './errors.js';

/** The frame's `bitCount` bits, from bit `bitOffset` of `bytes`, packed from bit 0. */
export function framePackedBits(bytes: Uint8Array, bitCount: number, bitOffset: number): Uint8Array {
  if (!Number.isInteger(bitOffset) || bitOffset < 0 || bitOffset > 7) {
    throw new DecodeError('BAD_ATTRIBUTES', `bit offset ${bitOffset} is not 0..7`);
  }
  const outLength = Math.ceil(bitCount / 8);
  const needed = Math.ceil((bitOffset + bitCount) / 8);
  if (bytes.length < needed) {
    throw new DecodeError('CORRUPT_FRAME', `1-bit frame has ${bytes.length} bytes, ${needed} needed for ${bitCount} pixels`);
  }
  const tailBits = bitCount % 8;
  const tailMask = tailBits === 0 ? 0xff : (1 << tailBits) - 1;
  if (bitOffset === 0) {
    // Byte-aligned: the stored bytes are the frame (no copy) unless the last byte carries
    // bits beyond the frame, which belong to the next frame and are cleared in a copy.
    const frame = bytes.subarray(0, outLength);
    if ((frame[outLength - 1]! & ~tailMask) === 0) return frame;
    const out = frame.slice();
    out[outLength - 1] = out[outLength - 1]! & tailMask;
    return out;
  }
  const out = new Uint8Array(outLength);
  const up = 8 - bitOffset;
  for (let i = 0; i < outLength; i++) {
    const next = i + 1 < needed ? bytes[i + 1]! : 0;
    out[i] = (bytes[i]! >> bitOffset) | ((next << up) & 0xff);
  }
  out[outLength - 1] = out[outLength - 1]! & tailMask;
  return out;
}
