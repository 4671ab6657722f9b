// The decoded samples as a typed array chosen by Bits Allocated and Pixel Representation, and the
// normalisation of the bits above Bits Stored (cleared when unsigned, sign-extended when signed),
// so every decoder hands out the same values whatever the encoder left in the unused bits.
//
// Typed arrays use the host's byte order. Every engine that runs browsers or Node today is
// little-endian, which is the order DICOM native data and the corpus references use.

export type PixelArray = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array;

/**
 * The samples in `bytes` as the typed array for this bit depth and sign, over the same memory.
 * `bytes.byteOffset` must be a multiple of the sample size (callers copy first when it is not).
 */
export function pixelView(bytes: Uint8Array, bitsAllocated: 8 | 16 | 32, signed: boolean): PixelArray {
  const { buffer, byteOffset } = bytes;
  switch (bitsAllocated) {
    case 8: return signed ? new Int8Array(buffer, byteOffset, bytes.length) : bytes;
    case 16: return signed ? new Int16Array(buffer, byteOffset, bytes.length >> 1) : new Uint16Array(buffer, byteOffset, bytes.length >> 1);
    case 32: return signed ? new Int32Array(buffer, byteOffset, bytes.length >> 2) : new Uint32Array(buffer, byteOffset, bytes.length >> 2);
  }
}

/** The bytes of a typed array (a view, no copy). */
export function pixelBytes(pixels: PixelArray): Uint8Array {
  return new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength);
}

/**
 * Normalises the bits above `bitsStored`. Clean data (the usual case) is only read: when `owned`
 * is false the samples belong to the caller (the frame as received), so they are copied before
 * the first change rather than modified in place.
 */
export function normaliseBits(pixels: PixelArray, bitsStored: number, bitsAllocated: number, signed: boolean, owned: boolean): PixelArray {
  if (bitsStored >= bitsAllocated) return pixels;
  // Shifting the stored bits to the top of a 32-bit integer and back clears (>>>) or
  // sign-extends (>>) everything above them, for every sample width.
  const shift = 32 - bitsStored;
  const n = pixels.length;
  let i = 0;
  if (signed) {
    while (i < n && ((pixels[i]! << shift) >> shift) === pixels[i]) i++;
  } else {
    while (i < n && ((pixels[i]! << shift) >>> shift) === pixels[i]) i++;
  }
  if (i === n) return pixels;
  const out = owned ? pixels : pixels.slice();
  if (signed) {
    for (; i < n; i++) out[i] = (out[i]! << shift) >> shift;
  } else {
    for (; i < n; i++) out[i] = (out[i]! << shift) >>> shift;
  }
  return out;
}

/** The smallest and largest value (0 and 0 for none). */
export function minMax(pixels: ArrayLike<number>): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < pixels.length; i++) {
    const v = pixels[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return pixels.length ? { min, max } : { min: 0, max: 0 };
}
