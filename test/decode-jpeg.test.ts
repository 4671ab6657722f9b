// The JPEG decoders (Baseline, Extended, Lossless): against the corpus references (lossless byte
// for byte, lossy within LOSSY_TOLERANCE grey levels, colour converted exactly where the
// reference is), our DCT decoder also on the corpus's 8-bit frames (in use it takes only 12-bit
// ones and sampling layouts libjpeg-turbo decodes otherwise), and on frames made here for what
// the corpus lacks: lossless streams of every predictor, point transform, restart intervals,
// 16-bit extremes and signed data (from a small encoder below, cross-checked with libjpeg-turbo
// where it decodes them), the colour rule with the Photometric Interpretation known, and corrupt
// frames.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FrameReader } from '../server/files/frame-reader.js';
import { indexFile, type IndexedFile } from '../server/index.js';
import { transferSyntax } from '../shared/transfer-syntax.js';
import { decodeJpeg } from '../web-client/decode/codecs/jpeg.js';
import { decodeDct } from '../web-client/decode/codecs/jpeg-extended.js';
import { readJpegHeader } from '../web-client/decode/codecs/jpeg-stream.js';
import { libjpegTurboCodec } from '../web-client/decode/codecs/jpeg-baseline.js';
import { frameLayout, frameSyntax, type FrameLayout } from '../web-client/decode/frame-layout.js';
import { DecodeError, decodeFrame, pixelBytes, type DecodeInstance, type PixelArray } from '../web-client/decode/index.js';
import { frameBytes, expectedArrayType, sameTypeValues, maxDifference } from './helpers/frames.js';
import { corpusDir, expectation, filesDir, manifest, sha256, type ManifestFile } from './helpers/corpus.js';

const BASELINE = '1.2.840.10008.1.2.4.50';
const EXTENDED = '1.2.840.10008.1.2.4.51';
const LOSSLESS = '1.2.840.10008.1.2.4.57';
const LOSSLESS_SV1 = '1.2.840.10008.1.2.4.70';
const SYNTAXES = [BASELINE, EXTENDED, LOSSLESS, LOSSLESS_SV1];
const isLossy = (uid: string): boolean => uid === BASELINE || uid === EXTENDED;

/** Another correct decoder of a lossy frame may differ from the reference by this much (corpus README). */
const LOSSY_TOLERANCE = 2;

/** Manifest fields this suite reads that the shared helper does not declare. */
type JpegManifestFile = ManifestFile & {
  frames?: Array<{ frame: number; sha256: string; reference_file?: string | null }>;
  reference?: { tool: string | null; colour_space?: string; colour_converted?: boolean } | null;
  tool_results?: Record<string, { status?: string; frame_sha256?: string[] } | undefined>;
  alternative_reference?: { frame_sha256?: string[] } | null;
};

const syntaxOf = (f: ManifestFile): string => f.transfer_syntax_uid ?? f.transfer_syntax_effective ?? '';
const nameOf = (uid: string): string => transferSyntax(uid)?.name ?? uid;





function isDecodeError(code: DecodeError['code'], ...inMessage: string[]) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof DecodeError, `a DecodeError, not ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const text of inMessage) assert.ok(e.message.includes(text), `"${e.message}" says ${text}`);
    return true;
  };
}

// ------------------------------------------------------------------ corpus

describe('JPEG frames of the corpus', () => {
  const reader = new FrameReader();
  const served = (manifest.files as JpegManifestFile[]).filter(
    (f) => expectation(f).outcome === 'served' && f.pixel_data?.encapsulated && SYNTAXES.includes(syntaxOf(f)),
  );
  const stats = new Map<string, { files: number; decoded: number; frames: number; maxDiff: number; noRaw: number }>();
  const statsOf = (uid: string) => {
    let s = stats.get(uid);
    if (!s) stats.set(uid, (s = { files: 0, decoded: 0, frames: 0, maxDiff: 0, noRaw: 0 }));
    return s;
  };
  const ownDct = { frames: 0, maxDiff: 0 };
  after(async () => {
    await reader.close();
    const lines = SYNTAXES.filter((uid) => stats.has(uid)).map((uid) => {
      const s = stats.get(uid)!;
      const diff = isLossy(uid) ? `, max difference ${s.maxDiff}${s.noRaw ? ` (${s.noRaw} frames without a raw reference)` : ''}` : ', byte-exact';
      return `${nameOf(uid)}: ${s.decoded}/${s.files} files (${s.frames} frames)${diff}`;
    });
    console.log(`JPEG corpus files decoded per transfer syntax: ${lines.join('; ')}`);
    console.log(`our DCT decoder on the corpus's 8-bit lossy frames: ${ownDct.frames} frames, max difference ${ownDct.maxDiff}`);
  });

  it('the corpus has JPEG Baseline, Extended and Lossless frames', () => {
    const present = new Set(served.map(syntaxOf));
    for (const uid of [BASELINE, EXTENDED, LOSSLESS_SV1]) assert.ok(present.has(uid), `${nameOf(uid)} is in the corpus`);
  });

  for (const f of served) {
    const uid = syntaxOf(f);
    statsOf(uid).files++;
    it(`${f.file} (${nameOf(uid)}): every frame matches its reference`, async (t) => {
      const file = await indexFile(join(filesDir, f.file));
      const references = f.frames ?? [];
      const s = statsOf(uid);
      let worst = 0;
      for (let n = 0; n < file.frames.length; n++) {
        const bytes = await frameBytes(reader, file, n);
        const decoding = decodeFrame(bytes, file.image);
        const reference = references[n];
        if (!reference) {
          // No tool decoded it (the manifest has no decoded hash): a clear CORRUPT_FRAME, not pixels.
          await assert.rejects(decoding, isDecodeError('CORRUPT_FRAME'), `frame ${n + 1} has no reference (no tool decodes it), yet it decoded`);
          t.diagnostic(`frame ${n + 1} has no reference: rejected as corrupt`);
          continue;
        }
        const { pixels, colourSpace } = await decoding;
        assert.equal(pixels.constructor.name, expectedArrayType(file.image), 'typed array for Bits Allocated / Pixel Representation');
        const out = pixelBytes(pixels);
        if (f.reference?.colour_converted) assert.equal(colourSpace, 'RGB', 'converted YBR is reported as RGB');
        else if (f.reference?.colour_space === file.image.photometricInterpretation) assert.equal(colourSpace, undefined, 'colour as stored');
        if (!isLossy(uid)) {
          assert.equal(sha256(out), reference.sha256, `frame ${n + 1} is byte-exact`);
        } else {
          const raw = reference.reference_file;
          if (raw && existsSync(join(corpusDir, raw))) {
            const d = maxDifference(pixels, sameTypeValues(readFileSync(join(corpusDir, raw)), pixels));
            assert.ok(d <= LOSSY_TOLERANCE, `frame ${n + 1}: max difference ${d} > ${LOSSY_TOLERANCE} from ${raw}`);
            worst = Math.max(worst, d);
            if (bytes[0] === 0xff && readJpegHeader(bytes, 'test').frame.precision === 8) {
              // Our decoder on the same frame (it decodes the 12-bit ones in the loop above).
              const own = decodeDct(bytes, f.reference?.colour_converted === true, 'test');
              const dOwn = maxDifference(own.samples, sameTypeValues(readFileSync(join(corpusDir, raw)), pixels));
              assert.ok(dOwn <= LOSSY_TOLERANCE, `our DCT decoder: frame ${n + 1} max difference ${dOwn}`);
              ownDct.frames++;
              ownDct.maxDiff = Math.max(ownDct.maxDiff, dOwn);
            }
          } else {
            const { rows, columns, samplesPerPixel, bitsAllocated } = file.image;
            assert.equal(out.length, rows * columns * samplesPerPixel * (bitsAllocated / 8), 'frame size');
            s.noRaw++;
            t.diagnostic(`frame ${n + 1}: no raw reference (${sha256(out) === reference.sha256 ? 'sha256 matches' : 'sha256 differs'})`);
          }
        }
        s.frames++;
      }
      if (isLossy(uid)) t.diagnostic(`max difference ${worst}`);
      s.maxDiff = Math.max(s.maxDiff, worst);
      s.decoded++;
    });
  }

  // The same frames with the Photometric Interpretation in the layout (FrameLayout does not carry
  // it yet; the decoders read it when it is there).
  const colourCase = (name: string) => served.find((f) => f.file === name);
  async function decodeWithPhotometric(f: JpegManifestFile, photometricInterpretation: string) {
    const file = await indexFile(join(filesDir, f.file));
    const bytes = await frameBytes(reader, file, 0);
    const layout = { ...frameLayout(file.image, frameSyntax(file.image)), photometricInterpretation } as FrameLayout;
    const out = await decodeJpeg(bytes, layout);
    return ArrayBuffer.isView(out) ? { pixels: out, colourSpace: undefined } : out;
  }

  it('a YBR stream whose header says RGB comes out unconverted (equals dcmtk +cn)', async () => {
    const f = colourCase('SC_rgb_jpeg_dcmtk.dcm');
    const unconverted = f?.tool_results?.dcmtk_no_colour_conversion?.frame_sha256?.[0];
    // The fixtures hold this file and its dcmtk +cn hash: a corpus without them fails here, not silently.
    assert.ok(f && unconverted, 'SC_rgb_jpeg_dcmtk.dcm and its dcmtk +cn hash are in the corpus');
    const { pixels, colourSpace } = await decodeWithPhotometric(f, 'RGB');
    assert.equal(sha256(pixelBytes(pixels)), unconverted);
    assert.equal(colourSpace, undefined);
    const converted = await decodeWithPhotometric(f, 'YBR_FULL');
    assert.equal(sha256(pixelBytes(converted.pixels)), f.frames![0]!.sha256);
    assert.equal(converted.colourSpace, 'RGB');
  });

  it('an RGB-header stream of YCbCr is converted when the header says YBR (the alternative reference)', async () => {
    const f = colourCase('SC_rgb_jpeg_lossy_gdcm.dcm');
    const alternative = f?.alternative_reference?.frame_sha256?.[0];
    assert.ok(f && alternative, 'SC_rgb_jpeg_lossy_gdcm.dcm and its alternative reference are in the corpus');
    const { pixels, colourSpace } = await decodeWithPhotometric(f, 'YBR_FULL_422');
    assert.equal(sha256(pixelBytes(pixels)), alternative);
    assert.equal(colourSpace, 'RGB');
    const asStored = await decodeWithPhotometric(f, 'RGB');
    assert.equal(sha256(pixelBytes(asStored.pixels)), f.frames![0]!.sha256);
  });
});

// ------------------------------------------------------------------ lossless frames made here

interface LosslessOptions {
  rows: number;
  columns: number;
  precision: number;
  /** Predictor selection value 1..7. */
  selection: number;
  pointTransform?: number;
  /** In samples (MCUs); 0 for none. */
  restartInterval?: number;
  componentIds?: number[];
}

/**
 * A lossless Huffman JPEG (T.81 Annex H) of `planes` (one array of rows × columns values per
 * component, interleaved in one scan): one DC table giving categories 0..16 five-bit codes.
 */
function encodeLossless(planes: number[][], o: LosslessOptions): Uint8Array {
  const { rows, columns, precision, selection } = o;
  const pt = o.pointTransform ?? 0;
  const ri = o.restartInterval ?? 0;
  const ids = o.componentIds ?? planes.map((_, i) => i + 1);
  const out: number[] = [];
  const u16 = (v: number) => out.push(v >> 8, v & 0xff);
  const segment = (marker: number, body: number[]) => { out.push(0xff, marker); u16(body.length + 2); out.push(...body); };
  out.push(0xff, 0xd8);
  segment(0xc3, [precision, rows >> 8, rows & 0xff, columns >> 8, columns & 0xff, planes.length, ...ids.flatMap((id) => [id, 0x11, 0])]);
  const counts = new Array<number>(16).fill(0);
  counts[4] = 17;
  segment(0xc4, [0x00, ...counts, ...Array.from({ length: 17 }, (_, k) => k)]);
  if (ri) segment(0xdd, [ri >> 8, ri & 0xff]);
  segment(0xda, [planes.length, ...ids.flatMap((id) => [id, 0x00]), selection, 0, pt]);

  let acc = 0;
  let n = 0;
  const bit = (b: number) => {
    acc = (acc << 1) | b;
    if (++n === 8) { out.push(acc); if (acc === 0xff) out.push(0); acc = 0; n = 0; }
  };
  const write = (value: number, count: number) => { for (let i = count - 1; i >= 0; i--) bit((value >> i) & 1); };
  const reduced = planes.map((p) => p.map((v) => v >> pt));
  let firstLineStart = 0;
  let restarts = 0;
  for (let i = 0; i < rows * columns; i++) {
    if (ri && i > 0 && i % ri === 0) {
      while (n) bit(1);
      out.push(0xff, 0xd0 + (restarts++ & 7));
      firstLineStart = i;
    }
    const x = i % columns;
    for (const p of reduced) {
      let pred: number;
      if (i === firstLineStart) pred = 1 << (precision - pt - 1);
      else if (i - x <= firstLineStart) pred = p[i - 1]!;
      else if (x === 0) pred = p[i - columns]!;
      else {
        const a = p[i - 1]!;
        const b = p[i - columns]!;
        const c = p[i - columns - 1]!;
        pred = [0, a, b, c, a + b - c, a + ((b - c) >> 1), b + ((a - c) >> 1), (a + b) >> 1][selection]!;
      }
      let d = (p[i]! - pred) & 0xffff;
      if (d >= 0x8000) d -= 0x10000;
      if (d === -0x8000) { write(16, 5); continue; }
      const s = d === 0 ? 0 : 32 - Math.clz32(Math.abs(d));
      write(s, 5);
      if (s) write(d >= 0 ? d : d + (1 << s) - 1, s);
    }
  }
  while (n) bit(1);
  out.push(0xff, 0xd9);
  return Uint8Array.from(out);
}

function losslessInstance(over: Partial<DecodeInstance>): DecodeInstance {
  return {
    rows: 1, columns: 1, bitsAllocated: 16, bitsStored: 16, highBit: 15, pixelRepresentation: 0, samplesPerPixel: 1,
    photometricInterpretation: 'MONOCHROME2', planarConfiguration: 0, transferSyntaxUid: LOSSLESS, encapsulated: true, ...over,
  };
}

/**
 * Deterministic test values in [lo, hi] with the sequence hi, lo, mid every 7 samples, so that
 * differences wrap around and reach half the range (category 16 at 16 bits).
 */
function samples(count: number, lo: number, hi: number, seed: number): number[] {
  let state = seed;
  return Array.from({ length: count }, (_, i) => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    if (i % 7 === 3) return hi;
    if (i % 7 === 4) return lo;
    if (i % 7 === 5) return lo + ((hi - lo + 1) >> 1);
    return lo + (state % (hi - lo + 1));
  });
}

describe('JPEG Lossless frames made here', () => {
  const rows = 6;
  const columns = 9;

  it('decodes 16-bit extremes with every predictor and restart interval exactly', async () => {
    const values = samples(rows * columns, 0, 65535, 1);
    for (let selection = 1; selection <= 7; selection++) {
      for (const restartInterval of [0, columns, 2 * columns]) {
        const frame = encodeLossless([values], { rows, columns, precision: 16, selection, restartInterval });
        const { pixels } = await decodeFrame(frame, losslessInstance({ rows, columns }));
        assert.ok(pixels instanceof Uint16Array);
        assert.deepEqual(Array.from(pixels), values, `selection value ${selection}, restart interval ${restartInterval}`);
      }
    }
  });

  it('undoes the point transform', async () => {
    const pt = 3;
    const values = samples(rows * columns, 0, 4095, 2).map((v) => (v >> pt) << pt);
    for (const selection of [1, 4, 7]) {
      const frame = encodeLossless([values], { rows, columns, precision: 12, selection, pointTransform: pt });
      const { pixels } = await decodeFrame(frame, losslessInstance({ rows, columns, bitsStored: 12, highBit: 11 }));
      assert.deepEqual(Array.from(pixels), values, `selection value ${selection}`);
    }
  });

  it('sign-extends signed data from Bits Stored, whatever the codestream precision (16 for 12 stored)', async () => {
    const values = samples(rows * columns, -2048, 2047, 3);
    const frame = encodeLossless([values.map((v) => v & 0xffff)], { rows, columns, precision: 16, selection: 6 });
    const { pixels } = await decodeFrame(frame, losslessInstance({ rows, columns, bitsStored: 12, highBit: 11, pixelRepresentation: 1 }));
    assert.ok(pixels instanceof Int16Array);
    assert.deepEqual(Array.from(pixels), values);
  });

  it('decodes 2-bit samples into bytes', async () => {
    const values = samples(rows * columns, 0, 3, 4);
    const frame = encodeLossless([values], { rows, columns, precision: 2, selection: 5, restartInterval: columns });
    const { pixels } = await decodeFrame(frame, losslessInstance({ rows, columns, bitsAllocated: 8, bitsStored: 2, highBit: 1, transferSyntaxUid: LOSSLESS_SV1 }));
    assert.ok(pixels instanceof Uint8Array);
    assert.deepEqual(Array.from(pixels), values);
  });

  it('decodes interleaved 8-bit RGB with restarts as libjpeg-turbo does, without colour conversion', async () => {
    const planes = [1, 2, 3].map((seed) => samples(rows * columns, 0, 255, seed));
    const interleaved = planes[0]!.flatMap((_, i) => planes.map((p) => p[i]!));
    const image = losslessInstance({ rows, columns, bitsAllocated: 8, bitsStored: 8, highBit: 7, samplesPerPixel: 3, photometricInterpretation: 'RGB' });
    const codec = await libjpegTurboCodec();
    for (let selection = 1; selection <= 7; selection++) {
      // Component ids 'R', 'G', 'B': libjpeg-turbo then converts nothing either.
      const frame = encodeLossless(planes, { rows, columns, precision: 8, selection, restartInterval: columns, componentIds: [0x52, 0x47, 0x42] });
      const { pixels, colourSpace } = await decodeFrame(frame, image);
      assert.deepEqual(Array.from(pixels), interleaved, `selection value ${selection}`);
      assert.equal(colourSpace, undefined);
      const decoder = new codec.JPEGDecoder();
      try {
        decoder.getEncodedBuffer(frame.length).set(frame);
        decoder.decode();
        assert.deepEqual(Array.from(decoder.getDecodedBuffer()), interleaved, `libjpeg-turbo, selection value ${selection}`);
      } finally {
        decoder.delete();
      }
    }
  });
});

// ------------------------------------------------------------------ corrupt and contradictory frames

describe('corrupt JPEG frames', () => {
  const rows = 4;
  const columns = 5;
  const values = samples(rows * columns, 0, 255, 9);
  const good = encodeLossless([values], { rows, columns, precision: 8, selection: 1 });
  const grey8 = { rows, columns, bitsAllocated: 8 as const, bitsStored: 8, highBit: 7 };

  it('rejects bytes that are not a JPEG codestream with CORRUPT_FRAME, in every JPEG syntax', async () => {
    for (const uid of SYNTAXES) {
      await assert.rejects(decodeFrame(Uint8Array.of(1, 2, 3, 4), losslessInstance({ ...grey8, transferSyntaxUid: uid })), isDecodeError('CORRUPT_FRAME', 'JPEG', 'SOI'), nameOf(uid));
    }
  });

  it('rejects a codestream whose size or components contradict the attributes', async () => {
    await assert.rejects(decodeFrame(good, losslessInstance({ ...grey8, rows: rows + 1 })), isDecodeError('CORRUPT_FRAME', `${columns} × ${rows}`));
    await assert.rejects(decodeFrame(good, losslessInstance({ ...grey8, samplesPerPixel: 3, photometricInterpretation: 'RGB' })), isDecodeError('CORRUPT_FRAME', 'components'));
  });

  it('rejects processes DICOM JPEG syntaxes do not use, naming them', async () => {
    const progressive = good.slice();
    progressive[progressive.indexOf(0xc3, 2)] = 0xc2; // SOF3 → SOF2
    for (const uid of [BASELINE, EXTENDED]) {
      await assert.rejects(decodeFrame(progressive, losslessInstance({ ...grey8, transferSyntaxUid: uid })), isDecodeError('CORRUPT_FRAME', 'SOF2 (progressive DCT)'));
    }
    await assert.rejects(decodeFrame(progressive, losslessInstance(grey8)), isDecodeError('CORRUPT_FRAME', 'SOF2'));
  });

  it('decodes a lossless codestream sent in a lossy syntax by what the stream is', async () => {
    const { pixels } = await decodeFrame(good, losslessInstance({ ...grey8, transferSyntaxUid: BASELINE }));
    assert.deepEqual(Array.from(pixels), values);
  });

  it('decodes truncated entropy-coded data as libjpeg does (the rest as zero bits), without throwing', async () => {
    const { pixels } = await decodeFrame(good.subarray(0, good.length - 8), losslessInstance(grey8));
    assert.equal(pixels.length, rows * columns);
    assert.deepEqual(Array.from(pixels.subarray(0, 4)), values.slice(0, 4));
  });
});
