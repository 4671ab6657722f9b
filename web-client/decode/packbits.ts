// One RLE segment (PS3.5 G.3.1, the PackBits scheme): a header byte n then either n+1 literal
// bytes (n 0..127) or one byte repeated 257-n times (n 129..255); n = 128 does nothing.

/**
 * Decodes `segment` into `out` at `start`, `start + stride`, … for `count` bytes: the stride
 * puts each byte straight where it goes in the interleaved frame, with no per-segment buffer.
 * Runs past `count` are clamped (encoders pad segments to an even length, and some overshoot);
 * a literal run past the end of the segment takes what is there. Returns the bytes written,
 * which is less than `count` when the segment is short.
 */
export function unpackBits(segment: Uint8Array, out: Uint8Array, start: number, stride: number, count: number): number {
  const end = segment.length;
  let i = 0;
  let written = 0;
  while (i < end && written < count) {
    const header = segment[i++]!;
    if (header < 128) {
      const n = Math.min(header + 1, count - written, end - i);
      if (stride === 1) {
        out.set(segment.subarray(i, i + n), start + written);
      } else {
        for (let k = 0, o = start + written * stride; k < n; k++, o += stride) out[o] = segment[i + k]!;
      }
      i += header + 1;
      written += n;
    } else if (header > 128) {
      if (i >= end) break;
      const value = segment[i++]!;
      const n = Math.min(257 - header, count - written);
      if (stride === 1) {
        out.fill(value, start + written, start + written + n);
      } else {
        for (let k = 0, o = start + written * stride; k < n; k++, o += stride) out[o] = value;
      }
      written += n;
    }
  }
  return written;
}
