// Reading indexed frames and comparing decoded samples, for the decoder suites.
import assert from 'node:assert/strict';
import type { FrameReader } from '../../server/files/frame-reader.js';
import type { IndexedFile } from '../../server/index.js';
import type { DecodeInstance, PixelArray } from '../../web-client/decode/index.js';

/** Frame `n` (0-based) of an indexed file, as stored. */
export async function frameBytes(reader: FrameReader, file: IndexedFile, n: number): Promise<Uint8Array> {
  const frame = file.frames[n]!;
  const out = new Uint8Array(frame.length);
  await reader.read(file, frame, 0, frame.length, out, 0);
  return out;
}

/** The typed array name a decoder must return for these attributes. */
export function expectedArrayType(instance: Pick<DecodeInstance, 'bitsAllocated' | 'pixelRepresentation'>): string {
  return `${instance.pixelRepresentation === 1 ? 'Int' : 'Uint'}${instance.bitsAllocated}Array`;
}

/** Reference bytes as the sample values of the decoded array's type. */
export function sameTypeValues(bytes: Uint8Array, like: PixelArray): PixelArray {
  const copy = new Uint8Array(bytes); // aligned
  const Type = like.constructor as new (buffer: ArrayBuffer) => PixelArray;
  return new Type(copy.buffer);
}

export function maxDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'sample count');
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}
