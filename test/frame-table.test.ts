// How encapsulated Pixel Data is cut into frames, on hand-made item sequences: offset tables that
// fit or do not, one or many fragments per frame, codestream start markers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encapsulatedFrames, nativeFrames } from '../server/index/frame-table.js';
import { memorySource } from '../server/index/index-file.js';
import { IndexError } from '../server/index/index-error.js';
import type { ImageAttributes } from '../shared/protocol.js';

const item = (value: Uint8Array): Uint8Array => {
  const out = new Uint8Array(8 + value.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, 0xfffe, true); v.setUint16(2, 0xe000, true); v.setUint32(4, value.length, true);
  out.set(value, 8);
  return out;
};
const delimiter = new Uint8Array([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
const table = (offsets: number[]) => {
  const b = new Uint8Array(offsets.length * 4);
  offsets.forEach((o, i) => new DataView(b.buffer).setUint32(i * 4, o, true));
  return b;
};
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};
/** A JPEG-looking fragment (SOI first) or a continuation fragment. */
const jpeg = (n: number, fill: number) => concat(new Uint8Array([0xff, 0xd8]), new Uint8Array(n - 2).fill(fill));
const tail = (n: number, fill: number) => new Uint8Array(n).fill(fill);

/** Pixel Data value: offset table item, fragments, delimiter; returns it with the fragments' item offsets. */
function encapsulate(bot: number[] | 'auto' | 'empty', fragments: Uint8Array[], frameStarts?: number[]) {
  const items = fragments.map(item);
  const offsets: number[] = [];
  let at = 0;
  for (const i of items) { offsets.push(at); at += i.length; }
  const entries = bot === 'auto' ? (frameStarts ?? []).map((f) => offsets[f]!) : bot === 'empty' ? [] : bot;
  return { bytes: concat(item(table(entries)), ...items, delimiter), offsets };
}

async function frames(bytes: Uint8Array, numberOfFrames: number, eot?: number[]) {
  const warnings: string[] = [];
  const out = await encapsulatedFrames(memorySource(bytes), 0, numberOfFrames, eot, warnings);
  const read = out.map((f) => {
    const parts: Uint8Array[] = [];
    for (let i = 0; i < f.segments.length; i += 2) parts.push(bytes.subarray(f.segments[i]!, f.segments[i]! + f.segments[i + 1]!));
    return concat(...parts);
  });
  return { read, warnings };
}

describe('encapsulated frames', () => {
  const a = [jpeg(10, 1), tail(7, 2)];
  const b = [jpeg(12, 3), tail(5, 4), tail(3, 5)];
  const c = [jpeg(6, 6)];
  const expected = [concat(...a), concat(...b), concat(...c)];

  it('follows a valid Basic Offset Table, several fragments per frame', async () => {
    const { bytes } = encapsulate('auto', [...a, ...b, ...c], [0, 2, 5]);
    const { read, warnings } = await frames(bytes, 3);
    assert.deepEqual(read, expected);
    assert.deepEqual(warnings, []);
  });

  it('follows an Extended Offset Table over an empty Basic Offset Table', async () => {
    const { bytes, offsets } = encapsulate('empty', [...a, ...b, ...c]);
    const { read } = await frames(bytes, 3, [offsets[0]!, offsets[2]!, offsets[5]!]);
    assert.deepEqual(read, expected);
  });

  it('finds frames by codestream start markers when the Basic Offset Table is empty', async () => {
    const { bytes } = encapsulate('empty', [...a, ...b, ...c]);
    const { read } = await frames(bytes, 3);
    assert.deepEqual(read, expected);
  });

  it('ignores an offset table that points between items, with a warning', async () => {
    const { bytes } = encapsulate([0, 19, 60], [...a, ...b, ...c]);
    const { read, warnings } = await frames(bytes, 3);
    assert.deepEqual(read, expected);
    assert.match(warnings.join(), /does not fit/);
  });

  it('takes one fragment per frame when counts match, and all fragments for a single frame', async () => {
    const one = encapsulate('empty', [tail(4, 1), tail(6, 2)]);
    assert.deepEqual((await frames(one.bytes, 2)).read, [tail(4, 1), tail(6, 2)]);
    assert.deepEqual((await frames(one.bytes, 1)).read, [concat(tail(4, 1), tail(6, 2))]);
  });

  it('refuses fragments it cannot assign to frames, and a fragment past the end of the file', async () => {
    const { bytes } = encapsulate('empty', [tail(4, 1), tail(4, 2), tail(4, 3)]);
    await assert.rejects(frames(bytes, 2), (e: IndexError) => e.code === 'CORRUPT');
    const cut = encapsulate('empty', [jpeg(40, 1)]).bytes.subarray(0, 30);
    await assert.rejects(frames(cut, 1), (e: IndexError) => e.code === 'TRUNCATED');
  });
});

describe('native frames', () => {
  const image = (o: Partial<ImageAttributes>) => ({ rows: 3, columns: 5, samplesPerPixel: 1, bitsAllocated: 1, numberOfFrames: 3, photometricInterpretation: 'MONOCHROME2', ...o }) as ImageAttributes;

  it('places 1-bit frames that do not end on a byte boundary, with their bit offset', () => {
    const f = nativeFrames(image({}), 100, 6, 1000, []);
    // 15 bits a frame: frame 2 starts at bit 15 (byte 1, bit 7), frame 3 at bit 30 (byte 3, bit 6), ending in byte 5.
    assert.deepEqual(f.map((x) => [x.segments[0], x.segments[1], x.bitOffset]), [[100, 2, 0], [101, 3, 7], [103, 3, 6]]);
  });

  it('sizes YBR_FULL_422 frames at two samples a pixel', () => {
    const f = nativeFrames(image({ bitsAllocated: 8, samplesPerPixel: 3, numberOfFrames: 1, rows: 2, columns: 4, photometricInterpretation: 'YBR_FULL_422' }), 0, 16, 16, []);
    assert.equal(f[0]!.length, 16);
  });

  it('refuses pixel data shorter than its frames', () => {
    assert.throws(() => nativeFrames(image({ bitsAllocated: 16, numberOfFrames: 2 }), 0, 40, 1000, []), (e: IndexError) => e.code === 'TRUNCATED');
  });
});
