// Planar Configuration 1 stores colour by plane (all R, then all G, then all B); decoded frames
// are always interleaved (R G B per pixel), whatever the file did.

/** A new buffer with the planes of `bytes` interleaved, sample by sample. */
export function interleavePlanes(bytes: Uint8Array, pixelCount: number, samplesPerPixel: number, sampleBytes: number): Uint8Array {
  const out = new Uint8Array(pixelCount * samplesPerPixel * sampleBytes);
  const pixelBytes = samplesPerPixel * sampleBytes;
  const planeBytes = pixelCount * sampleBytes;
  for (let s = 0; s < samplesPerPixel; s++) {
    const plane = s * planeBytes;
    const at = s * sampleBytes;
    if (sampleBytes === 1) {
      // The common case (8-bit RGB), without the inner byte loop.
      for (let p = 0, o = at; p < pixelCount; p++, o += pixelBytes) out[o] = bytes[plane + p]!;
      continue;
    }
    for (let p = 0; p < pixelCount; p++) {
      const from = plane + p * sampleBytes;
      const to = p * pixelBytes + at;
      for (let b = 0; b < sampleBytes; b++) out[to + b] = bytes[from + b]!;
    }
  }
  return out;
}
