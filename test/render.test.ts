// The renderer against independent computations: every grey and colour corpus image (from its
// reference decode) through each photometric path, and hand-made images for the LUT paths the
// corpus lacks (Modality and VOI LUT Sequences, palettes, LINEAR_EXACT, SIGMOID, YBR_FULL).
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { indexFile } from '../server/index.js';
import type { ImageAttributes, LookupTable } from '../shared/protocol.js';
import { initialWindow, renderRgba, type Pixels } from '../web-client/index.js';
import { corpusDir, expectation, filesDir, manifest } from './helpers/corpus.js';
import { expectedGrey, samples } from './helpers/expected-grey.js';

function typed(raw: Uint8Array, bits: number, signed: boolean): Pixels {
  const buf = new Uint8Array(raw).buffer; // a copy with its own ArrayBuffer (a small Buffer shares a pool)
  if (bits === 16) return signed ? new Int16Array(buf) : new Uint16Array(buf);
  if (bits === 32) return signed ? new Int32Array(buf) : new Uint32Array(buf);
  return signed && bits === 8 ? new Int8Array(buf) : new Uint8Array(buf);
}

const clamp = (v: number) => Math.min(255, Math.max(0, Math.round(v)));
function ybrToRgb(y: number, cb: number, cr: number): [number, number, number] {
  return [clamp(y + 1.402 * (cr - 128)), clamp(y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)), clamp(y + 1.772 * (cb - 128))];
}

function maxDiff(rgba: Uint8ClampedArray, expected: number[][]): number {
  let worst = 0;
  expected.forEach((px, i) => { for (let c = 0; c < px.length; c++) worst = Math.max(worst, Math.abs(rgba[i * 4 + c]! - px[c]!)); });
  return worst;
}

describe('renderer on the corpus (reference decodes)', () => {
  const rendered: Record<string, number> = {};
  const candidates = manifest.files.filter((f) => expectation(f).outcome === 'served' && f.frames?.[0] && existsSync(join(corpusDir, 'reference', `${f.file}.1.raw`)));
  for (const f of candidates) {
    it(`${f.file} (${f.photometric_interpretation})`, async () => {
      const { image } = await indexFile(join(filesDir, f.file));
      const raw = readFileSync(join(corpusDir, 'reference', `${f.file}.1.raw`));
      const signed = image.pixelRepresentation === 1;
      const pixels = typed(raw, image.bitsAllocated, signed);
      const n = image.rows * image.columns;
      // A reference that decoding turned into RGB (YBR JPEG, J2K with MCT) is drawn as RGB, as the viewer does.
      const converted = Boolean(f.reference?.colour_converted);
      const pi = converted ? 'RGB' : image.photometricInterpretation;
      let expected: number[][];
      let rgba: Uint8ClampedArray;
      if (pi === 'MONOCHROME1' || pi === 'MONOCHROME2') {
        const window = initialWindow(pixels, image)!;
        rgba = renderRgba(pixels, image, { window });
        const spec = { slope: image.hasRescale ? image.rescaleSlope : 1, intercept: image.hasRescale ? image.rescaleIntercept : 0, center: window.center, width: window.width, fn: image.voiLutFunction, monochrome1: pi === 'MONOCHROME1' };
        const values = image.bitsAllocated === 1 ? Array.from({ length: n }, (_, i) => (raw[i >> 3]! >> (i & 7)) & 1) : samples(raw, image.bitsAllocated, signed);
        expected = values.map((v) => { const g = expectedGrey(v, spec); return [g, g, g, 255]; });
      } else if (pi === 'RGB') {
        rgba = renderRgba(pixels, image, converted ? { colourSpace: 'RGB' } : {});
        const s = samples(raw, image.bitsAllocated, false);
        const shift = 2 ** Math.max(0, image.bitsStored - 8);
        expected = Array.from({ length: n }, (_, i) => [0, 1, 2].map((c) => clamp(s[i * 3 + c]! / shift)).concat(255));
      } else if (pi === 'YBR_FULL_422') {
        rgba = renderRgba(pixels, image);
        expected = [];
        for (let i = 0; i < n; i++) {
          const pair = Math.floor(i / 2) * 4;
          expected.push([...ybrToRgb(raw[pair + (i % 2)]!, raw[pair + 2]!, raw[pair + 3]!), 255]);
        }
      } else {
        assert.fail(`no expectation for ${pi}`);
      }
      assert.ok(maxDiff(rgba, expected) <= 1, `${f.file}: largest difference ${maxDiff(rgba, expected)}`);
      rendered[pi] = (rendered[pi] ?? 0) + 1;
    });
  }
  it('covers MONOCHROME1, MONOCHROME2, RGB and YBR_FULL_422 from the corpus', () => {
    for (const pi of ['MONOCHROME1', 'MONOCHROME2', 'RGB', 'YBR_FULL_422']) assert.ok(rendered[pi], `${pi} rendered`);
    console.log(`# corpus images rendered per photometric interpretation: ${JSON.stringify(rendered)}`);
  });
});

/** A hand-made image description with what the renderer reads. */
function image(o: Partial<ImageAttributes>): ImageAttributes {
  return {
    rows: 1, columns: 4, samplesPerPixel: 1, photometricInterpretation: 'MONOCHROME2', bitsAllocated: 16, bitsStored: 16, highBit: 15,
    pixelRepresentation: 0, hasRescale: false, rescaleSlope: 1, rescaleIntercept: 0, modalityLut: null, voiLuts: [], voiLutFunction: '',
    windowCenter: [], windowWidth: [], redPalette: null, greenPalette: null, bluePalette: null, ...o,
  } as ImageAttributes;
}
function lut(entries: number[], first: number, bits: number, bytes: 1 | 2 = 2): LookupTable {
  const data = new Uint8Array(entries.length * bytes);
  entries.forEach((e, i) => { if (bytes === 1) data[i] = e; else { data[2 * i] = e & 255; data[2 * i + 1] = e >> 8; } });
  return { numberOfEntries: entries.length, firstMappedValue: first, bitsPerEntry: bits, data, explanation: '', modalityLutType: '', bytesPerEntry: bytes };
}
const reds = (rgba: Uint8ClampedArray) => Array.from({ length: rgba.length / 4 }, (_, i) => rgba[i * 4]!);

describe('renderer LUT paths', () => {
  const px = new Uint16Array([0, 100, 200, 300]);

  it('LINEAR, LINEAR_EXACT and SIGMOID windows follow PS3.3 C.11.2.1.2', () => {
    for (const fn of ['LINEAR', 'LINEAR_EXACT', 'SIGMOID']) {
      const got = reds(renderRgba(px, image({ voiLutFunction: fn }), { window: { center: 150, width: 200 } }));
      assert.deepEqual(got, [...px].map((v) => expectedGrey(v, { slope: 1, intercept: 0, center: 150, width: 200, fn })), fn);
    }
    assert.notDeepEqual(reds(renderRgba(px, image({ voiLutFunction: 'SIGMOID' }), { window: { center: 150, width: 200 } })),
      reds(renderRgba(px, image({}), { window: { center: 150, width: 200 } })));
  });

  it('applies rescale before the window, signed values included', () => {
    const signed = new Int16Array([-1000, 0, 40, 1000]);
    const got = reds(renderRgba(signed, image({ pixelRepresentation: 1, hasRescale: true, rescaleSlope: 2, rescaleIntercept: -10 }), { window: { center: 40, width: 400 } }));
    assert.deepEqual(got, [...signed].map((v) => expectedGrey(v, { slope: 2, intercept: -10, center: 40, width: 400 })));
  });

  it('uses a Modality LUT Sequence instead of rescale, clamping outside its range', () => {
    const table = [0, 1000, 2000, 3000];
    const got = reds(renderRgba(new Uint16Array([5, 6, 7, 9]), image({ modalityLut: lut(table, 6, 16), hasRescale: true, rescaleSlope: 99 }), { window: { center: 1500, width: 3001 } }));
    // 5 is below the first mapped value (6): entry 0; 9 is past the end: the last entry.
    assert.deepEqual(got, [0, 0, 1000, 3000].map((x) => expectedGrey(x, { slope: 1, intercept: 0, center: 1500, width: 3001 })));
  });

  it('uses a VOI LUT Sequence when no window is chosen, scaled by its entry bits', () => {
    const voi = lut([0, 1023, 4095], 100, 12);
    const got = reds(renderRgba(new Uint16Array([99, 100, 101, 102]), image({ voiLuts: [voi] })));
    assert.deepEqual(got, [0, 0, Math.round((1023 / 4095) * 255), 255]);
  });

  it('inverts MONOCHROME1', () => {
    const m2 = reds(renderRgba(px, image({}), { window: { center: 150, width: 300 } }));
    const m1 = reds(renderRgba(px, image({ photometricInterpretation: 'MONOCHROME1' }), { window: { center: 150, width: 300 } }));
    assert.deepEqual(m1, m2.map((g) => 255 - g));
  });

  it('maps PALETTE COLOR through 16-bit and 8-bit tables', () => {
    const idx = new Uint8Array([0, 1, 2, 3]);
    const p16 = image({ photometricInterpretation: 'PALETTE COLOR', bitsAllocated: 8, bitsStored: 8,
      redPalette: lut([0, 0xffff, 0x8000, 0x1000], 0, 16), greenPalette: lut([0xffff, 0, 0, 0], 0, 16), bluePalette: lut([0, 0, 0xffff, 0x0100], 0, 16) });
    const rgba = renderRgba(idx, p16);
    assert.deepEqual(Array.from(rgba), [0, 255, 0, 255, 255, 0, 0, 255, 128, 0, 255, 255, 16, 0, 1, 255]);
    const p8 = image({ photometricInterpretation: 'PALETTE COLOR', bitsAllocated: 8, bitsStored: 8,
      redPalette: lut([10, 20], 1, 8, 1), greenPalette: lut([30, 40], 1, 8, 1), bluePalette: lut([50, 60], 1, 8, 1) });
    // Index 0 is below the first mapped value (1): the first entry; 2 and 3 past the end: the last.
    assert.deepEqual(Array.from(renderRgba(idx, p8)), [10, 30, 50, 255, 10, 30, 50, 255, 20, 40, 60, 255, 20, 40, 60, 255]);
  });

  it('converts YBR_FULL to RGB and passes RGB through', () => {
    const ybr = new Uint8Array([76, 85, 255, 150, 44, 21, 29, 255, 107]);
    const img = image({ photometricInterpretation: 'YBR_FULL', samplesPerPixel: 3, bitsAllocated: 8, bitsStored: 8, columns: 3 });
    const rgba = renderRgba(ybr, img);
    for (let i = 0; i < 3; i++) assert.deepEqual(Array.from(rgba.subarray(i * 4, i * 4 + 3)), ybrToRgb(ybr[i * 3]!, ybr[i * 3 + 1]!, ybr[i * 3 + 2]!));
    assert.deepEqual(Array.from(renderRgba(new Uint8Array([1, 2, 3]), image({ photometricInterpretation: 'RGB', samplesPerPixel: 3, bitsAllocated: 8, bitsStored: 8, columns: 1 }))), [1, 2, 3, 255]);
  });

  it('draws 1-bit images as black and white', () => {
    const bits = new Uint8Array([0b0101]);
    assert.deepEqual(reds(renderRgba(bits, image({ bitsAllocated: 1, bitsStored: 1 }), { window: { center: 0.5, width: 1 } })), [255, 0, 255, 0]);
  });

  it('redraws a 512×512 16-bit frame in place with each new window, as window dragging does', () => {
    const big = new Uint16Array(512 * 512).map((_, i) => (i * 7) & 4095);
    const img = image({ rows: 512, columns: 512, bitsStored: 12 });
    const out = new Uint8ClampedArray(512 * 512 * 4);
    // Each redraw must land in the caller's buffer (no allocation per drag step) and reflect its own
    // window, not a table cached from the previous one. Timings are in `npm run bench:decode`.
    for (const window of [{ center: 2000, width: 1000 }, { center: 2019, width: 1000 }, { center: 600, width: 37 }]) {
      assert.equal(renderRgba(big, img, { window }, out), out);
      for (let i = 0; i < big.length; i++) {
        const g = expectedGrey(big[i]!, { slope: 1, intercept: 0, ...window });
        if (out[i * 4] !== g || out[i * 4 + 1] !== g || out[i * 4 + 2] !== g || out[i * 4 + 3] !== 255) {
          assert.fail(`window ${window.center}/${window.width}: pixel ${i} (stored ${big[i]}) is ${Array.from(out.subarray(i * 4, i * 4 + 4))}, expected grey ${g}`);
        }
      }
    }
  });
});
