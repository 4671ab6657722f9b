// Explicit VR Big Endian stores each 16- or 32-bit sample most significant byte first; the
// decoded samples are little-endian. 32-bit samples are reversed as 4-byte units, not as two
// 16-bit words (what dcmtk 3.6.7 and GDCM 3.0.21 do for OW, giving word-swapped values).

/** Reverses the bytes of every `sampleBytes`-byte sample, in place. */
export function swapBytesInPlace(bytes: Uint8Array, sampleBytes: 2 | 4): void {
  const n = bytes.length - (bytes.length % sampleBytes);
  if (sampleBytes === 2) {
    for (let i = 0; i < n; i += 2) {
      const a = bytes[i]!;
      bytes[i] = bytes[i + 1]!;
      bytes[i + 1] = a;
    }
    return;
  }
  for (let i = 0; i < n; i += 4) {
    const a = bytes[i]!;
    const b = bytes[i + 1]!;
    bytes[i] = bytes[i + 3]!;
    bytes[i + 1] = bytes[i + 2]!;
    bytes[i + 2] = b;
    bytes[i + 3] = a;
  }
}
