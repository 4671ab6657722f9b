// Reading a DICOM lookup table (Modality LUT, VOI LUT, palette channel) as sent by the server.
import type { LookupTable } from '../../shared/protocol.js';

/** The table's entries as numbers, whatever their byte layout. */
export function lutEntries(lut: LookupTable): Uint16Array {
  const n = lut.numberOfEntries || 65536;
  const out = new Uint16Array(n);
  const data = lut.data;
  if (lut.bytesPerEntry === 1) {
    for (let i = 0; i < n && i < data.length; i++) out[i] = data[i]!;
    return out;
  }
  for (let i = 0; i < n && 2 * i + 1 < data.length; i++) out[i] = data[2 * i]! | (data[2 * i + 1]! << 8);
  // 8-bit entries stored one per 16-bit word: some writers use the high byte.
  if (lut.bitsPerEntry <= 8) {
    let max = 0;
    for (let i = 0; i < n; i++) if (out[i]! > max) max = out[i]!;
    if (max > 255) for (let i = 0; i < n; i++) out[i] = out[i]! >> 8;
  }
  return out;
}

/** Looks up `value`, clamping below the first mapped value and past the last entry, as the standard says. */
export function lookup(entries: Uint16Array, firstMapped: number, value: number): number {
  const i = value - firstMapped;
  return entries[i <= 0 ? 0 : i >= entries.length ? entries.length - 1 : i]!;
}
