// Colour frames given to Cornerstone: dicomstream's conversion of native YBR_FULL, YBR_FULL_422
// and PALETTE COLOR frames must give the bytes that Cornerstone's own DICOM image loader
// (@cornerstonejs/dicom-image-loader's convertColorSpace, from npm) gives for the same samples.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { convertColorSpace } from '@cornerstonejs/dicom-image-loader';
import { cornerstoneColour } from '../web-client/cornerstone/colour.js';
import type { LookupTable } from '../shared/protocol.js';
import { Rng } from './helpers/rng.js';

const rows = 37;
const columns = 42; // even: YBR_FULL_422 pairs pixels on a row
const n = rows * columns;
const none = { redPalette: null, greenPalette: null, bluePalette: null };

/** What Cornerstone's loader makes of the frame: RGB, 3 bytes a pixel. */
function theirs(frame: Record<string, unknown>): Uint8ClampedArray {
  const out = new Uint8ClampedArray(n * 3);
  (convertColorSpace as (f: unknown, out: Uint8ClampedArray, rgba: boolean) => void)({ rows, columns, planarConfiguration: 0, ...frame }, out, false);
  return out;
}

/** A palette channel both ways: dicomstream's LookupTable (little-endian bytes) and Cornerstone's entries. */
function channel(entries: number[], first: number, bits: number): { lut: LookupTable; data: number[]; descriptor: number[] } {
  const data = new Uint8Array(entries.length * 2);
  entries.forEach((v, i) => { data[2 * i] = v & 0xff; data[2 * i + 1] = v >> 8; });
  return { lut: { numberOfEntries: entries.length, firstMappedValue: first, bitsPerEntry: bits, data, explanation: '', modalityLutType: '', bytesPerEntry: 2 }, data: entries, descriptor: [entries.length, first, bits] };
}

describe('colour frames for Cornerstone', () => {
  const random = new Rng(12);
  const bytes = (count: number) => random.bytes(count);

  it('native YBR_FULL converts as Cornerstone converts it', () => {
    const ybr = bytes(n * 3);
    assert.deepEqual(cornerstoneColour(ybr, 'YBR_FULL', { rows, columns, planarConfiguration: 0, ...none }), theirs({ photometricInterpretation: 'YBR_FULL', pixelData: ybr }));
  });

  it('native YBR_FULL_422 (2 samples a pixel) converts as Cornerstone converts it', () => {
    const ybr = bytes(n * 2);
    assert.deepEqual(cornerstoneColour(ybr, 'YBR_FULL_422', { rows, columns, planarConfiguration: 0, ...none }), theirs({ photometricInterpretation: 'YBR_FULL_422', pixelData: ybr }));
  });

  for (const bits of [8, 16]) {
    it(`PALETTE COLOR with ${bits}-bit entries looks up as Cornerstone does, indices below and past the table clamped`, () => {
      const first = 10;
      const size = 200;
      const max = bits === 8 ? 255 : 65535;
      const [r, g, b] = [0, 1, 2].map(() => channel(Array.from({ length: size }, () => random.int(max + 1)), first, bits));
      const indices = Uint16Array.from({ length: n }, () => random.int(size + 40));
      const ours = cornerstoneColour(indices, 'PALETTE COLOR', { rows, columns, planarConfiguration: 0, redPalette: r!.lut, greenPalette: g!.lut, bluePalette: b!.lut });
      const expected = theirs({
        photometricInterpretation: 'PALETTE COLOR', pixelData: indices,
        redPaletteColorLookupTableData: r!.data, greenPaletteColorLookupTableData: g!.data, bluePaletteColorLookupTableData: b!.data,
        redPaletteColorLookupTableDescriptor: r!.descriptor, greenPaletteColorLookupTableDescriptor: g!.descriptor, bluePaletteColorLookupTableDescriptor: b!.descriptor,
      });
      assert.deepEqual(ours, expected);
    });
  }
});
