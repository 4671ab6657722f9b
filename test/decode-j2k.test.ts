// The JPEG-LS, JPEG 2000 and HTJ2K decoders: against the corpus references (lossless byte for
// byte, lossy within LOSSY_TOLERANCE grey levels), and on frames made here with the codecs' own
// encoders for what the corpus lacks (HTJ2K, JPEG-LS colour in each interleave mode, signed
// JPEG-LS), plus corrupt and contradictory frames.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FrameReader } from '../server/files/frame-reader.js';
import { indexFile, type IndexedFile } from '../server/index.js';
import { transferSyntax } from '../shared/transfer-syntax.js';
import { decodeWithOpenJpeg } from '../web-client/decode/codecs/jpeg2000.js';
import { frameLayout, frameSyntax } from '../web-client/decode/frame-layout.js';
import { DecodeError, decodeFrame, pixelBytes, type DecodeInstance, type PixelArray } from '../web-client/decode/index.js';
import { frameBytes, expectedArrayType, sameTypeValues, maxDifference } from './helpers/frames.js';
import { corpusDir, expectation, filesDir, manifest, sha256, type ManifestFile } from './helpers/corpus.js';

const JPEG_LS = '1.2.840.10008.1.2.4.80';
const JPEG_LS_NEAR = '1.2.840.10008.1.2.4.81';
const J2K_LOSSLESS = '1.2.840.10008.1.2.4.90';
const J2K = '1.2.840.10008.1.2.4.91';
const HTJ2K_LOSSLESS = '1.2.840.10008.1.2.4.201';
const HTJ2K_RPCL = '1.2.840.10008.1.2.4.202';
const HTJ2K = '1.2.840.10008.1.2.4.203';
const SYNTAXES = [JPEG_LS, JPEG_LS_NEAR, J2K_LOSSLESS, J2K, HTJ2K_LOSSLESS, HTJ2K_RPCL, HTJ2K];

/** Another correct decoder of a lossy frame may differ from the reference by this much (corpus README). */
const LOSSY_TOLERANCE = 2;

/** Manifest fields this suite reads that the shared helper does not declare. */
type CodecManifestFile = ManifestFile & {
  frames?: Array<{ frame: number; sha256: string; reference_file?: string | null }>;
  reference?: { tool: string | null; colour_space?: string; reason?: string };
};

const syntaxOf = (f: ManifestFile): string => f.transfer_syntax_uid ?? f.transfer_syntax_effective ?? '';
const nameOf = (uid: string): string => transferSyntax(uid)?.name ?? uid;





function isDecodeError(code: DecodeError['code'], ...inMessage: Array<string | RegExp>) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof DecodeError, `a DecodeError, not ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const text of inMessage) {
      if (typeof text === 'string') assert.ok(e.message.includes(text), `"${e.message}" says ${text}`);
      else assert.match(e.message, text);
    }
    return true;
  };
}

// ------------------------------------------------------------------ corpus

describe('JPEG-LS, JPEG 2000 and HTJ2K frames of the corpus', () => {
  const reader = new FrameReader();
  const served = (manifest.files as CodecManifestFile[]).filter((f) => expectation(f).outcome === 'served' && f.pixel_data?.encapsulated);
  const stats = new Map<string, { files: number; decoded: number; rejected: number; frames: number; maxDiff: number }>();
  const statsOf = (uid: string) => {
    let s = stats.get(uid);
    if (!s) stats.set(uid, (s = { files: 0, decoded: 0, rejected: 0, frames: 0, maxDiff: 0 }));
    return s;
  };
  after(async () => {
    await reader.close();
    const lines = SYNTAXES.filter((uid) => stats.has(uid)).map((uid) => {
      const s = stats.get(uid)!;
      const rejected = s.rejected ? `, ${s.rejected} rejected as corrupt as expected` : '';
      return `${nameOf(uid)}: ${s.decoded}/${s.files} files decoded (${s.frames} frames${rejected}), max diff ${s.maxDiff}`;
    });
    const absent = SYNTAXES.filter((uid) => !stats.has(uid)).map(nameOf);
    if (absent.length) lines.push(`not in this corpus: ${absent.join(', ')}`);
    console.log(`JPEG-LS / JPEG 2000 / HTJ2K corpus frames: ${lines.join('; ')}`);
  });

  for (const f of served.filter((x) => SYNTAXES.includes(syntaxOf(x)))) {
    const uid = syntaxOf(f);
    const lossy = transferSyntax(uid)?.lossy ?? false;
    statsOf(uid).files++;
    it(`${f.file} (${nameOf(uid)}): every frame ${lossy ? `within ${LOSSY_TOLERANCE} of` : 'equal to'} its reference`, async (t) => {
      const file = await indexFile(join(filesDir, f.file));
      const references = f.frames ?? [];
      const s = statsOf(uid);
      let fileMaxDiff = 0;
      let decodedFrames = 0;
      let rejected = false;
      for (let n = 0; n < file.frames.length; n++) {
        const bytes = await frameBytes(reader, file, n);
        const decoding = decodeFrame(bytes, file.image);
        const reference = references[n];
        if (!reference) {
          // No tool decoded it (the corpus marks it a corrupt codestream): a clear CORRUPT_FRAME, not pixels.
          const message = await decoding.then(() => assert.fail(`frame ${n + 1} has no reference (no tool decodes it), yet it decoded`), (e: unknown) => {
            isDecodeError('CORRUPT_FRAME', /JPEG-LS|JPEG 2000|HTJ2K/)(e);
            return (e as Error).message;
          });
          t.diagnostic(`frame ${n + 1}: ${message}`);
          rejected = true;
          continue;
        }
        const { pixels, colourSpace } = await decoding;
        assert.equal(pixels.constructor.name, expectedArrayType(file.image), 'typed array for Bits Allocated / Pixel Representation');
        const out = pixelBytes(pixels);
        if (f.reference?.colour_space) {
          assert.equal(colourSpace ?? file.image.photometricInterpretation, f.reference.colour_space, 'colour space of the decoded samples');
        }
        const exact = sha256(out) === reference.sha256;
        const raw = reference.reference_file ? join(corpusDir, reference.reference_file) : undefined;
        const rawDiff = () => maxDifference(pixels, sameTypeValues(readFileSync(raw!), pixels));
        let diff = 0;
        if (!lossy) {
          assert.ok(exact, `frame ${n + 1}: sha256 differs from the reference${raw && existsSync(raw) ? ` (max diff ${rawDiff()})` : ''}`);
        } else if (raw && existsSync(raw)) {
          // Lossy: measured against the .raw reference when there is one, else the hash must match.
          diff = rawDiff();
          assert.ok(diff <= LOSSY_TOLERANCE, `frame ${n + 1}: max difference ${diff} > ${LOSSY_TOLERANCE}`);
        } else {
          assert.ok(exact, `frame ${n + 1} differs from the reference hash and ${reference.reference_file ?? 'its .raw'} is missing: copy it from the shared corpus to compare with a tolerance`);
        }
        fileMaxDiff = Math.max(fileMaxDiff, diff);
        decodedFrames++;
      }
      t.diagnostic(`${decodedFrames}/${file.frames.length} frames decoded, max diff ${fileMaxDiff}`);
      s.frames += decodedFrames;
      s.maxDiff = Math.max(s.maxDiff, fileMaxDiff);
      if (decodedFrames > 0) s.decoded++;
      if (rejected) s.rejected++;
    });
  }
});

// ------------------------------------------------------------------ hand-made frames

// The codec packages' full builds (with encoders). A new options object for each: Emscripten
// makes it its Module.
const require = createRequire(import.meta.url);
const quiet = () => ({ print: () => undefined, printErr: () => undefined });
interface EncoderFrameInfo { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned: boolean; isUsingColorTransform: boolean }
interface Encoder {
  getDecodedBuffer(info: EncoderFrameInfo): Uint8Array;
  encode(): void;
  getEncodedBuffer(): Uint8Array;
  delete(): void;
  setInterleaveMode?(mode: number): void;
  setNearLossless?(near: number): void;
  setQuality?(lossless: boolean, q: number): void;
  setDecompositions?(n: number): void;
}
type Codec = Record<string, new () => Encoder>;
const codecs = new Map<string, Promise<Codec>>();
function codec(path: string): Promise<Codec> {
  if (!codecs.has(path)) codecs.set(path, (require(path) as (o: object) => Promise<Codec>)(quiet()));
  return codecs.get(path)!;
}

async function encode(path: string, name: string, info: Partial<EncoderFrameInfo> & Pick<EncoderFrameInfo, 'width' | 'height' | 'bitsPerSample'>, samples: ArrayBufferView, configure?: (e: Encoder) => void): Promise<Uint8Array> {
  const e = new (await codec(path))[name]!();
  try {
    e.getDecodedBuffer({ componentCount: 1, isSigned: false, isUsingColorTransform: false, ...info }).set(new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength));
    configure?.(e);
    e.encode();
    return e.getEncodedBuffer().slice();
  } finally {
    e.delete();
  }
}
const charls = (info: Parameters<typeof encode>[2], samples: ArrayBufferView, configure?: (e: Encoder) => void) => encode('@cornerstonejs/codec-charls/wasmjs', 'JpegLSEncoder', info, samples, configure);
const openjph = (info: Parameters<typeof encode>[2], samples: ArrayBufferView, configure?: (e: Encoder) => void) => encode('@cornerstonejs/codec-openjph/wasmjs', 'HTJ2KEncoder', info, samples, configure);
const openjpeg = (info: Parameters<typeof encode>[2], samples: ArrayBufferView) => encode('@cornerstonejs/codec-openjpeg/wasmjs', 'J2KEncoder', info, samples, (e) => { e.setQuality!(true, 0); e.setDecompositions!(3); });

function instance(transferSyntaxUid: string, over: Partial<DecodeInstance>): DecodeInstance {
  return {
    rows: 1, columns: 1, bitsAllocated: 16, bitsStored: 16, highBit: 15, pixelRepresentation: 0, samplesPerPixel: 1,
    photometricInterpretation: 'MONOCHROME2', planarConfiguration: 0, transferSyntaxUid, encapsulated: true, ...over,
  };
}

const W = 23;
const H = 17;
/** Samples that vary in every direction, so a misplaced row, column or component shows. */
const ramp = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));
const signed16 = new Int16Array(ramp(W * H, (i) => ((i * 7919) % 60000) - 30000));
const signed12 = new Int16Array(ramp(W * H, (i) => ((i * 2749) % 4096) - 2048));
const unsigned16 = new Uint16Array(ramp(W * H, (i) => (i * 40503) % 65536));
const rgb8 = new Uint8Array(ramp(W * H * 3, (i) => (i * 97 + (i % 3) * 61 + Math.floor(i / (W * 3)) * 13) & 255));
const grey8 = new Uint8Array(ramp(W * H, (i) => (i * 37 + Math.floor(i / W) * 11) & 255));
const planes = (interleaved: Uint8Array, samples: number) => {
  const n = interleaved.length / samples;
  return new Uint8Array(ramp(interleaved.length, (i) => interleaved[(i % n) * samples + Math.floor(i / n)]!));
};
const values = (p: PixelArray | ArrayLike<number>): number[] => Array.from(p as ArrayLike<number>);
const grey16 = (uid: string, over: Partial<DecodeInstance> = {}) => instance(uid, { rows: H, columns: W, ...over });
const colour8 = (uid: string, over: Partial<DecodeInstance> = {}) => instance(uid, {
  rows: H, columns: W, bitsAllocated: 8, bitsStored: 8, highBit: 7, samplesPerPixel: 3, photometricInterpretation: 'RGB', ...over,
});

describe('JPEG-LS round trips (CharLS encoder)', () => {
  it('decodes 16-bit signed samples exactly, as an Int16Array', async () => {
    const frame = await charls({ width: W, height: H, bitsPerSample: 16 }, signed16);
    const { pixels } = await decodeFrame(frame, grey16(JPEG_LS, { pixelRepresentation: 1 }));
    assert.ok(pixels instanceof Int16Array);
    assert.deepEqual(values(pixels), values(signed16));
  });

  it('sign-extends signed 12-bit samples from Bits Stored (the codestream holds them unsigned)', async () => {
    const frame = await charls({ width: W, height: H, bitsPerSample: 12 }, new Uint16Array(values(signed12).map((v) => v & 0xfff)));
    const { pixels } = await decodeFrame(frame, grey16(JPEG_LS, { bitsStored: 12, highBit: 11, pixelRepresentation: 1 }));
    assert.deepEqual(values(pixels), values(signed12));
  });

  for (const [mode, name] of [[0, 'none (one scan per component)'], [1, 'line'], [2, 'sample']] as const) {
    it(`interleaves 8-bit RGB coded with interleave mode ${name}`, async () => {
      // CharLS takes (and gives back) mode 0 as planes, the others interleaved.
      const input = mode === 0 ? planes(rgb8, 3) : rgb8;
      const frame = await charls({ width: W, height: H, bitsPerSample: 8, componentCount: 3 }, input, (e) => e.setInterleaveMode!(mode));
      const { pixels, colourSpace } = await decodeFrame(frame, colour8(JPEG_LS, { planarConfiguration: mode === 0 ? 1 : 0 }));
      assert.ok(pixels instanceof Uint8Array);
      assert.deepEqual(values(pixels), values(rgb8));
      assert.equal(colourSpace, undefined, 'no colour conversion');
    });
  }

  it('keeps near-lossless (NEAR 2) frames within 2 of the original', async (t) => {
    const frame = await charls({ width: W, height: H, bitsPerSample: 16 }, signed16, (e) => e.setNearLossless!(2));
    const { pixels } = await decodeFrame(frame, grey16(JPEG_LS_NEAR, { pixelRepresentation: 1 }));
    const diff = maxDifference(pixels, signed16);
    t.diagnostic(`near-lossless max diff ${diff}`);
    assert.ok(diff <= 2, `max diff ${diff}`);
  });

  it('widens an 8-bit codestream to Bits Allocated 16', async () => {
    const frame = await charls({ width: W, height: H, bitsPerSample: 8 }, grey8);
    const { pixels } = await decodeFrame(frame, grey16(JPEG_LS, { bitsStored: 8, highBit: 7 }));
    assert.ok(pixels instanceof Uint16Array);
    assert.deepEqual(values(pixels), values(grey8));
  });

  it('rejects garbage, a truncated codestream and a size that contradicts the header with CORRUPT_FRAME', async () => {
    const frame = await charls({ width: W, height: H, bitsPerSample: 16 }, signed16);
    const image = grey16(JPEG_LS, { pixelRepresentation: 1 });
    await assert.rejects(decodeFrame(Uint8Array.of(1, 2, 3, 4, 5, 6), image), isDecodeError('CORRUPT_FRAME', 'JPEG-LS frame'));
    await assert.rejects(decodeFrame(frame.subarray(0, frame.length >> 1), image), isDecodeError('CORRUPT_FRAME', 'JPEG-LS frame'));
    await assert.rejects(decodeFrame(frame, { ...image, columns: W + 1 }), isDecodeError('CORRUPT_FRAME', `${W} × ${H}`, `${W + 1} × ${H}`));
  });
});

describe('HTJ2K round trips (OpenJPH encoder)', () => {
  for (const uid of [HTJ2K_LOSSLESS, HTJ2K_RPCL]) {
    it(`decodes signed 12-bit and unsigned 16-bit grey exactly (${nameOf(uid)})`, async () => {
      const s = await openjph({ width: W, height: H, bitsPerSample: 12, isSigned: true }, signed12);
      const signedOut = (await decodeFrame(s, grey16(uid, { bitsStored: 12, highBit: 11, pixelRepresentation: 1 }))).pixels;
      assert.ok(signedOut instanceof Int16Array);
      assert.deepEqual(values(signedOut), values(signed12));
      const u = await openjph({ width: W, height: H, bitsPerSample: 16 }, unsigned16);
      const unsignedOut = (await decodeFrame(u, grey16(uid))).pixels;
      assert.ok(unsignedOut instanceof Uint16Array);
      assert.deepEqual(values(unsignedOut), values(unsigned16));
    });
  }

  it('returns colour coded with the colour transform as RGB (YBR_RCT)', async () => {
    const frame = await openjph({ width: W, height: H, bitsPerSample: 8, componentCount: 3, isUsingColorTransform: true }, rgb8);
    const { pixels, colourSpace } = await decodeFrame(frame, colour8(HTJ2K_LOSSLESS, { photometricInterpretation: 'YBR_RCT' }));
    assert.deepEqual(values(pixels), values(rgb8));
    assert.equal(colourSpace, 'RGB');
  });

  it('decodes colour without the colour transform exactly (OpenJPEG: this OpenJPH build shuffles its rows)', async () => {
    // The encoder build has the same flaw: it hands its planar codestream the lines row by row,
    // component by component. Giving it line k of the order it writes (component ⌊k/H⌋, row k mod H)
    // where it reads line k (row ⌊k/3⌋, component k mod 3) makes a correct codestream.
    const shuffled = new Uint8Array(rgb8.length);
    for (let k = 0; k < 3 * H; k++) {
      for (let x = 0; x < W; x++) shuffled[(Math.floor(k / 3) * W + x) * 3 + (k % 3)] = rgb8[((k % H) * W + x) * 3 + Math.floor(k / H)]!;
    }
    const frame = await openjph({ width: W, height: H, bitsPerSample: 8, componentCount: 3 }, shuffled);
    const { pixels, colourSpace } = await decodeFrame(frame, colour8(HTJ2K_LOSSLESS));
    assert.deepEqual(values(pixels), values(rgb8));
    assert.equal(colourSpace, undefined);
  });

  it('decodes a lossy frame close to the original, and as OpenJPEG does within the corpus tolerance', async (t) => {
    const original = new Uint16Array(values(unsigned16).map((v) => v >> 4));
    const frame = await openjph({ width: W, height: H, bitsPerSample: 12 }, original, (e) => e.setQuality!(false, 0.001));
    const image = grey16(HTJ2K, { bitsStored: 12, highBit: 11 });
    const { pixels } = await decodeFrame(frame, image);
    const fromOriginal = maxDifference(pixels, original);
    const viaOpenJpeg = await decodeWithOpenJpeg(frame, frameLayout(image, frameSyntax(image)), 'HTJ2K');
    const fromOpenJpeg = maxDifference(pixels, ArrayBuffer.isView(viaOpenJpeg) ? viaOpenJpeg : viaOpenJpeg.pixels);
    t.diagnostic(`lossy HTJ2K: max diff ${fromOriginal} from the original, ${fromOpenJpeg} from OpenJPEG's decode`);
    assert.ok(fromOriginal > 0 && fromOriginal <= 16, `max diff from the original ${fromOriginal}`);
    assert.ok(fromOpenJpeg <= LOSSY_TOLERANCE, `max diff from OpenJPEG ${fromOpenJpeg}`);
  });

  it('decodes a plain JPEG 2000 codestream sent as HTJ2K (with OpenJPEG)', async () => {
    const frame = await openjpeg({ width: W, height: H, bitsPerSample: 16 }, unsigned16);
    assert.deepEqual(values((await decodeFrame(frame, grey16(HTJ2K_LOSSLESS))).pixels), values(unsigned16));
  });

  it('rejects garbage and a truncated header with CORRUPT_FRAME, naming HTJ2K', async () => {
    const frame = await openjph({ width: W, height: H, bitsPerSample: 16 }, unsigned16);
    const image = grey16(HTJ2K_LOSSLESS);
    await assert.rejects(decodeFrame(Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 0, 0), image), isDecodeError('CORRUPT_FRAME', 'HTJ2K frame', 'no codestream'));
    await assert.rejects(decodeFrame(frame.subarray(0, 30), image), isDecodeError('CORRUPT_FRAME', 'HTJ2K frame', 'cut short'));
    await assert.rejects(decodeFrame(frame, { ...image, rows: H - 1 }), isDecodeError('CORRUPT_FRAME', `${W} × ${H}`, `${W} × ${H - 1}`));
  });
});

describe('JPEG 2000 frames made with the OpenJPEG encoder', () => {
  it('returns colour coded with the multiple component transform as RGB', async () => {
    // This encoder always applies the MCT to colour: what DICOM calls YBR_RCT.
    const frame = await openjpeg({ width: W, height: H, bitsPerSample: 8, componentCount: 3 }, rgb8);
    const { pixels, colourSpace } = await decodeFrame(frame, colour8(J2K_LOSSLESS, { photometricInterpretation: 'YBR_RCT' }));
    assert.deepEqual(values(pixels), values(rgb8));
    assert.equal(colourSpace, 'RGB');
  });

  it('widens an 8-bit codestream to Bits Allocated 16', async () => {
    const frame = await openjpeg({ width: W, height: H, bitsPerSample: 8 }, grey8);
    const { pixels } = await decodeFrame(frame, grey16(J2K_LOSSLESS, { bitsStored: 8, highBit: 7 }));
    assert.ok(pixels instanceof Uint16Array);
    assert.deepEqual(values(pixels), values(grey8));
  });

  it('refuses signed 8-bit samples, which this OpenJPEG build clamps to 0..255', async () => {
    const frame = await openjpeg({ width: W, height: H, bitsPerSample: 8, isSigned: true }, new Uint8Array(W * H).fill(5));
    const image = instance(J2K_LOSSLESS, { rows: H, columns: W, bitsAllocated: 8, bitsStored: 8, highBit: 7, pixelRepresentation: 1 });
    await assert.rejects(decodeFrame(frame, image), isDecodeError('UNSUPPORTED_TRANSFER_SYNTAX', 'signed 8-bit'));
  });

  it('rejects garbage, a contradicting size and a codestream OpenJPEG cannot decode with CORRUPT_FRAME', async () => {
    const frame = await openjpeg({ width: W, height: H, bitsPerSample: 16 }, unsigned16);
    const image = grey16(J2K);
    await assert.rejects(decodeFrame(new Uint8Array(64).fill(7), image), isDecodeError('CORRUPT_FRAME', 'JPEG 2000 frame'));
    await assert.rejects(decodeFrame(frame, { ...image, samplesPerPixel: 3, photometricInterpretation: 'RGB' }), isDecodeError('CORRUPT_FRAME', '1 components', '3 samples per pixel'));
    // The main header intact, the first tile-part's header broken: only the codec can tell.
    const sot = frame.findIndex((b, i) => b === 0xff && frame[i + 1] === 0x90);
    const broken = frame.slice(0, sot + 12);
    broken.fill(0xff, sot + 2);
    await assert.rejects(decodeFrame(broken, image), isDecodeError('CORRUPT_FRAME', 'JPEG 2000 frame', 'OpenJPEG'));
  });
});
