// The modality LUT applied where a frame is decoded (decodeFrame's `rescale`, what the Cornerstone
// loader asks of the decode workers): values and array types as Cornerstone's loader makes them,
// and memory: results written over the stored values only when the caller gave them up.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeFrame, rescale, type DecodeInstance } from '../web-client/index.js';

const ct: DecodeInstance = {
  rows: 2, columns: 4, bitsAllocated: 16, bitsStored: 12, highBit: 11, pixelRepresentation: 0, samplesPerPixel: 1,
  photometricInterpretation: 'MONOCHROME2', planarConfiguration: 0, transferSyntaxUid: '1.2.840.10008.1.2.1', bigEndian: false, encapsulated: false,
};
const stored = [0, 24, 1000, 1024, 2000, 3071, 4095, 7];

/** A frame's bytes at `offset` of a buffer of their own, as a message would hold them. */
function frameAt(offset: number): Uint8Array {
  const buffer = new ArrayBuffer(offset + stored.length * 2);
  const view = new DataView(buffer, offset);
  stored.forEach((v, i) => view.setUint16(i * 2, v, true));
  return new Uint8Array(buffer, offset, stored.length * 2);
}

describe('rescale', () => {
  it('gives the modality LUT\'s values in the smallest array that holds them, as Cornerstone does', () => {
    const out = rescale(Uint16Array.from(stored), { slope: 1, intercept: -1024 });
    assert.equal(out.pixels.constructor, Int16Array);
    assert.deepEqual([...out.pixels], stored.map((v) => v - 1024));
    assert.deepEqual([out.min, out.max, out.scaled], [-1024, 3071, true]);
    const float = rescale(Uint16Array.from(stored), { slope: 0.5, intercept: 0 });
    assert.equal(float.pixels.constructor, Float32Array);
    const suv = rescale(Uint16Array.from(stored), { slope: 2, intercept: -10, factor: 0.001 });
    assert.ok(suv.pixels instanceof Float32Array);
    assert.ok(Math.abs(suv.pixels[6]! - 0.001 * (4095 * 2 - 10)) < 1e-6);
    const unchanged = Uint8Array.from([1, 2, 3]);
    assert.equal(rescale(unchanged, { slope: 1, intercept: 0 }).pixels, unchanged, 'nothing to do: the same array');
  });

  it('writes over the stored values only in place: same-size results, and the caller said so', () => {
    const input = Uint16Array.from(stored);
    const copy = rescale(input, { slope: 1, intercept: -1024 });
    assert.notEqual(copy.pixels.buffer, input.buffer);
    assert.deepEqual([...input], stored, 'not in place: the stored values are untouched');
    const own = rescale(input, { slope: 1, intercept: -1024 }, true);
    assert.equal(own.pixels.buffer, input.buffer, 'in place: the same memory');
    assert.deepEqual([...own.pixels], stored.map((v) => v - 1024));
    const wider = Uint16Array.from(stored);
    assert.notEqual(rescale(wider, { slope: 0.5, intercept: 0 }, true).pixels.buffer, wider.buffer, 'Float32 results need memory of their own');
  });

  it('decodeFrame: rescales in the frame\'s own bytes when it may consume them, never when it may not', async () => {
    for (const offset of [8, 3]) {
      const bytes = frameAt(offset);
      const before = [...bytes];
      const kept = await decodeFrame(bytes, ct, { rescale: { slope: 1, intercept: -1024 } });
      assert.deepEqual([...kept.pixels], stored.map((v) => v - 1024));
      assert.deepEqual([...bytes], before, `offset ${offset}: the caller's bytes are untouched`);
      const consumed = await decodeFrame(bytes, ct, { rescale: { slope: 1, intercept: -1024 }, consume: true });
      assert.deepEqual([...consumed.pixels], stored.map((v) => v - 1024));
      // Aligned, the results lie in the frame's buffer; at an odd offset a 16-bit view is impossible: one copy.
      assert.equal(consumed.pixels.buffer === bytes.buffer, offset % 2 === 0, `offset ${offset}`);
    }
  });
});
