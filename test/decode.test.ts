// The client's frame decoders (native family and RLE) against the corpus references, byte for
// byte, and on small hand-made frames for what the corpus does not hold (garbage high bits,
// unaligned 1-bit frames, corrupt RLE headers).
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { indexFile } from '../server/index.js';
import { FrameReader } from '../server/files/frame-reader.js';
import { indexedTransferSyntaxes, transferSyntax, VIDEO_TRANSFER_SYNTAXES } from '../shared/transfer-syntax.js';
import { DecodeError, decodeFrame, hasDecoder, pixelBytes, type DecodeInstance, type PixelArray } from '../web-client/decode/index.js';
import { corpusDir, expectation, filesDir, manifest, sha256, type ManifestFile } from './helpers/corpus.js';
import { frameBytes } from './helpers/frames.js';

const RLE = '1.2.840.10008.1.2.5';

/** Manifest fields this suite reads that the shared helper does not declare. */
type DecodeManifestFile = ManifestFile & {
  frames?: Array<{ frame: number; sha256: string; reference_file?: string | null }>;
};


const syntaxOf = (f: ManifestFile): string => f.transfer_syntax_uid ?? f.transfer_syntax_effective ?? '';
/** Served frames this suite decodes: native (incl. deflated, sent inflated) and RLE. */
const decodable = (f: ManifestFile): boolean => !f.pixel_data?.encapsulated || syntaxOf(f) === RLE;

function expectedArrayType(instance: DecodeInstance): string {
  if (instance.bitsAllocated === 1) return 'Uint8Array';
  const signed = instance.pixelRepresentation === 1;
  return `${signed ? 'Int' : 'Uint'}${instance.bitsAllocated}Array`;
}

function isDecodeError(code: DecodeError['code'], ...inMessage: string[]) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof DecodeError, `a DecodeError, not ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const text of inMessage) assert.ok(e.message.includes(text), `"${e.message}" names ${text}`);
    return true;
  };
}

describe('decodeFrame on the corpus', () => {
  const reader = new FrameReader();
  const decodedPerSyntax = new Map<string, number>();
  after(async () => {
    await reader.close();
    const lines = [...decodedPerSyntax].map(([uid, n]) => `${transferSyntax(uid)?.name ?? uid}: ${n}`);
    console.log(`frames decoded byte-exact per transfer syntax: ${lines.join('; ')}`);
  });

  const served = (manifest.files as DecodeManifestFile[]).filter((f) => expectation(f).outcome === 'served');
  for (const f of served.filter(decodable)) {
    it(`${f.file}: every frame equals its reference`, async (t) => {
      const file = await indexFile(join(filesDir, f.file));
      const references = f.frames ?? [];
      for (let n = 0; n < file.frames.length; n++) {
        const bytes = await frameBytes(reader, file, n);
        const decoding = decodeFrame(bytes, file.image, { bitOffset: file.frames[n]!.bitOffset });
        if (!references[n]) {
          // No tool decoded it (the manifest has no decoded hash): a clear CORRUPT_FRAME, not pixels.
          await assert.rejects(decoding, isDecodeError('CORRUPT_FRAME'), `frame ${n + 1} has no reference (no tool decodes it), yet it decoded`);
          t.diagnostic(`frame ${n + 1} has no reference: rejected as corrupt`);
          continue;
        }
        const { pixels } = await decoding;
        assert.equal(pixels.constructor.name, expectedArrayType(file.image), 'typed array for Bits Allocated / Pixel Representation');
        const out = pixelBytes(pixels);
        assert.equal(sha256(out), references[n]!.sha256, `frame ${n + 1} sha256`);
        const raw = references[n]!.reference_file;
        if (raw && existsSync(join(corpusDir, raw))) {
          assert.deepEqual(Buffer.from(out), readFileSync(join(corpusDir, raw)), `frame ${n + 1} equals ${raw}`);
        }
        const uid = file.image.transferSyntaxUid;
        decodedPerSyntax.set(uid, (decodedPerSyntax.get(uid) ?? 0) + 1);
      }
    });
  }

  // Syntaxes with a registered codec are checked against the corpus by their own suites.
  for (const f of served.filter((x) => !decodable(x) && !hasDecoder(syntaxOf(x)))) {
    const uid = syntaxOf(f);
    it(`${f.file}: ${transferSyntax(uid)?.name ?? uid} has no decoder`, async () => {
      const file = await indexFile(join(filesDir, f.file));
      const bytes = await frameBytes(reader, file, 0);
      await assert.rejects(decodeFrame(bytes, file.image), isDecodeError('UNSUPPORTED_TRANSFER_SYNTAX', transferSyntax(uid)?.name ?? uid, uid));
    });
  }

  it('the corpus has native, big-endian, deflated and RLE frames', () => {
    const syntaxes = new Set(served.filter(decodable).map(syntaxOf));
    for (const uid of ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1.99', RLE]) {
      assert.ok(syntaxes.has(uid), `${transferSyntax(uid)?.name} is in the corpus`);
    }
  });
});

// ------------------------------------------------------------------ hand-made frames

const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const EXPLICIT_BE = '1.2.840.10008.1.2.2';

function instance(over: Partial<DecodeInstance>): DecodeInstance {
  return {
    rows: 1, columns: 1, bitsAllocated: 16, bitsStored: 16, highBit: 15, pixelRepresentation: 0, samplesPerPixel: 1,
    photometricInterpretation: 'MONOCHROME2', planarConfiguration: 0, transferSyntaxUid: EXPLICIT_LE, ...over,
  };
}

const le16 = (values: number[]): Uint8Array => new Uint8Array(new Uint16Array(values.map((v) => v & 0xffff)).buffer);
const values = (p: PixelArray): number[] => Array.from(p);

describe('native frames', () => {
  it('sign-extends a 12-bit signed value from bit 11, whatever the bits above hold', async () => {
    // 0xF7FB: 0x7FB = 2043 with garbage above; 0x1FFB: -5; 0xA800: -2048; 0x0FFF: -1.
    const bytes = le16([0xf7fb, 0x1ffb, 0xa800, 0x0fff]);
    const image = instance({ columns: 4, bitsStored: 12, highBit: 11, pixelRepresentation: 1 });
    const { pixels } = await decodeFrame(bytes, image);
    assert.ok(pixels instanceof Int16Array);
    assert.deepEqual(values(pixels), [2043, -5, -2048, -1]);
    assert.deepEqual([...pixelBytes(pixels).subarray(2, 4)], [0xfb, 0xff], 'signed 12-bit -5 is FB FF');
    assert.deepEqual([...bytes], [...le16([0xf7fb, 0x1ffb, 0xa800, 0x0fff])], 'the received bytes are left alone');
  });

  it('clears the bits above Bits Stored when unsigned (8, 16 and 32 bits)', async () => {
    const p16 = (await decodeFrame(le16([0xf123, 0x0fff, 0x1000]), instance({ columns: 3, bitsStored: 12, highBit: 11 }))).pixels;
    assert.ok(p16 instanceof Uint16Array);
    assert.deepEqual(values(p16), [0x123, 0xfff, 0]);
    const p8 = (await decodeFrame(Uint8Array.of(0xff, 0x3f), instance({ columns: 2, bitsAllocated: 8, bitsStored: 6, highBit: 5 }))).pixels;
    assert.ok(p8 instanceof Uint8Array);
    assert.deepEqual(values(p8), [0x3f, 0x3f]);
    const b32 = new Uint8Array(new Uint32Array([0xffffffff, 0x00012345]).buffer);
    const p32 = (await decodeFrame(b32, instance({ columns: 2, bitsAllocated: 32, bitsStored: 17, highBit: 16 }))).pixels;
    assert.ok(p32 instanceof Uint32Array);
    assert.deepEqual(values(p32), [0x1ffff, 0x12345 & 0x1ffff]);
  });

  it('returns clean little-endian data without a copy, and copies when a view would be unaligned', async () => {
    const buffer = new Uint8Array(9);
    buffer.set(le16([1, 2, 0xffff, 4]), 0);
    const aligned = (await decodeFrame(buffer.subarray(0, 8), instance({ columns: 4 }))).pixels;
    assert.equal(aligned.buffer, buffer.buffer, 'a view of the received bytes');
    const odd = new Uint8Array(9);
    odd.set(le16([1, 2, 0xffff, 4]), 1);
    const copied = (await decodeFrame(odd.subarray(1), instance({ columns: 4, pixelRepresentation: 1 }))).pixels;
    assert.notEqual(copied.buffer, odd.buffer);
    assert.deepEqual(values(copied), [1, 2, -1, 4]);
  });

  it('ignores a pad byte after the frame, and rejects a short frame', async () => {
    const { pixels } = await decodeFrame(Uint8Array.of(1, 2, 3), instance({ columns: 3, bitsAllocated: 8, bitsStored: 8 }));
    assert.deepEqual(values(pixels), [1, 2, 3]);
    const padded = (await decodeFrame(Uint8Array.of(1, 0, 2, 0, 0), instance({ columns: 2 }))).pixels;
    assert.deepEqual(values(padded), [1, 2]);
    await assert.rejects(decodeFrame(Uint8Array.of(1, 0, 2), instance({ columns: 2 })), isDecodeError('CORRUPT_FRAME'));
  });

  it('swaps explicit VR big-endian 16-bit samples', async () => {
    const { pixels } = await decodeFrame(Uint8Array.of(0x12, 0x34, 0xff, 0xfe), instance({ columns: 2, pixelRepresentation: 1, transferSyntaxUid: EXPLICIT_BE, bigEndian: true }));
    assert.ok(pixels instanceof Int16Array);
    assert.deepEqual(values(pixels), [0x1234, -2]);
  });

  it('swaps big-endian 32-bit samples as 4-byte units (not as two 16-bit words)', async () => {
    const bytes = Uint8Array.of(0x01, 0x02, 0x03, 0x04, 0xff, 0xff, 0xff, 0xfe);
    // bigEndian left out: it follows the transfer syntax.
    const image: DecodeInstance = instance({ columns: 2, bitsAllocated: 32, bitsStored: 32, highBit: 31, transferSyntaxUid: EXPLICIT_BE });
    const { pixels } = await decodeFrame(bytes, image);
    assert.ok(pixels instanceof Uint32Array);
    assert.deepEqual(values(pixels), [0x01020304, 0xfffffffe]);
    assert.deepEqual([...bytes], [0x01, 0x02, 0x03, 0x04, 0xff, 0xff, 0xff, 0xfe], 'the received bytes are left alone');
  });

  it('does not swap 8-bit big-endian samples', async () => {
    const { pixels } = await decodeFrame(Uint8Array.of(1, 2, 3), instance({ columns: 3, bitsAllocated: 8, bitsStored: 8, transferSyntaxUid: EXPLICIT_BE, bigEndian: true }));
    assert.deepEqual(values(pixels), [1, 2, 3]);
  });

  it('interleaves planar configuration 1 colour (8 and 16 bits, little and big endian)', async () => {
    const rgb = { rows: 2, columns: 2, samplesPerPixel: 3, photometricInterpretation: 'RGB', planarConfiguration: 1 };
    const planes8 = Uint8Array.of(10, 11, 12, 13, 20, 21, 22, 23, 30, 31, 32, 33);
    const p8 = (await decodeFrame(planes8, instance({ ...rgb, bitsAllocated: 8, bitsStored: 8 }))).pixels;
    assert.deepEqual(values(p8), [10, 20, 30, 11, 21, 31, 12, 22, 32, 13, 23, 33]);
    const planes16 = [1000, 1001, 1002, 1003, 2000, 2001, 2002, 2003, 3000, 3001, 3002, 3003];
    const interleaved16 = [1000, 2000, 3000, 1001, 2001, 3001, 1002, 2002, 3002, 1003, 2003, 3003];
    assert.deepEqual(values((await decodeFrame(le16(planes16), instance(rgb))).pixels), interleaved16);
    const be = new Uint8Array(planes16.flatMap((v) => [v >> 8, v & 0xff]));
    assert.deepEqual(values((await decodeFrame(be, instance({ ...rgb, transferSyntaxUid: EXPLICIT_BE }))).pixels), interleaved16);
  });

  it('keeps native YBR_FULL_422 as stored: two samples a pixel', async () => {
    const stored = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
    const image = instance({ rows: 2, columns: 2, bitsAllocated: 8, bitsStored: 8, samplesPerPixel: 3, photometricInterpretation: 'YBR_FULL_422' });
    assert.deepEqual(values((await decodeFrame(stored, image)).pixels), [1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('reads a native frame in a nominally compressed syntax when it is not encapsulated', async () => {
    const image = instance({ columns: 2, transferSyntaxUid: '1.2.840.10008.1.2.4.50', encapsulated: false });
    assert.deepEqual(values((await decodeFrame(le16([7, 8]), image)).pixels), [7, 8]);
  });

  it('reads deflated frames as the native little-endian data the server sends', async () => {
    const image = instance({ columns: 2, transferSyntaxUid: '1.2.840.10008.1.2.1.99' });
    assert.deepEqual(values((await decodeFrame(le16([7, 8]), image)).pixels), [7, 8]);
  });

  it('rejects impossible attributes', async () => {
    await assert.rejects(decodeFrame(new Uint8Array(4), instance({ columns: 2, bitsAllocated: 12 })), isDecodeError('BAD_ATTRIBUTES', 'Bits Allocated'));
    await assert.rejects(decodeFrame(new Uint8Array(4), instance({ columns: 2, bitsStored: 17 })), isDecodeError('BAD_ATTRIBUTES', 'Bits Stored'));
    await assert.rejects(decodeFrame(new Uint8Array(4), instance({ columns: 0 })), isDecodeError('BAD_ATTRIBUTES', 'Columns'));
  });
});

describe('1-bit frames', () => {
  // Bits of a multi-frame object of 1×11-pixel frames: frame 2 starts at bit 11 = byte 1, bit 3.
  const bitsPerFrame = 11;
  const allBits = Array.from({ length: 3 * bitsPerFrame }, (_, i) => ((i * 7 + 3) % 5) % 2);
  const pack = (bits: number[]): Uint8Array => {
    const out = new Uint8Array(Math.ceil(bits.length / 8));
    bits.forEach((b, i) => { out[i >> 3]! |= b << (i & 7); });
    return out;
  };
  const stored = pack(allBits);
  const image = instance({ columns: bitsPerFrame, bitsAllocated: 1, bitsStored: 1, highBit: 0 });

  it('re-packs a frame that starts at bit 3 so it starts at bit 0 of byte 0', async () => {
    const start = bitsPerFrame;
    const bytes = stored.subarray(start >> 3, Math.ceil((start + bitsPerFrame) / 8));
    const { pixels } = await decodeFrame(bytes, image, { bitOffset: start % 8 });
    assert.equal(start % 8, 3);
    assert.ok(pixels instanceof Uint8Array);
    assert.equal(pixels.length, Math.ceil(bitsPerFrame / 8));
    assert.deepEqual([...pixels], [...pack(allBits.slice(start, start + bitsPerFrame))]);
  });

  it('returns a byte-aligned frame as stored, with the next frame\'s bits cleared from its last byte', async () => {
    const bytes = stored.subarray(0, 2);
    const { pixels } = await decodeFrame(bytes, image, { bitOffset: 0 });
    assert.deepEqual([...pixels], [...pack(allBits.slice(0, bitsPerFrame))]);
    const whole = pack(allBits.slice(0, 16));
    const aligned = (await decodeFrame(whole, instance({ columns: 16, bitsAllocated: 1, bitsStored: 1, highBit: 0 }))).pixels;
    assert.equal(aligned.buffer, whole.buffer, 'no copy when nothing changes');
  });

  it('rejects a frame shorter than its bits', async () => {
    await assert.rejects(decodeFrame(stored.subarray(1, 2), image, { bitOffset: 3 }), isDecodeError('CORRUPT_FRAME'));
  });
});

// ------------------------------------------------------------------ RLE

/** PackBits as PS3.5 G.3.1: runs of 2..128 equal bytes, literals of 1..128. */
function packBits(bytes: number[]): number[] {
  const out: number[] = [];
  let i = 0;
  while (i < bytes.length) {
    let run = 1;
    while (i + run < bytes.length && run < 128 && bytes[i + run] === bytes[i]) run++;
    if (run >= 2) {
      out.push(257 - run, bytes[i]!);
      i += run;
      continue;
    }
    let n = 1;
    while (i + n < bytes.length && n < 128 && !(i + n + 1 < bytes.length && bytes[i + n] === bytes[i + n + 1])) n++;
    out.push(n - 1, ...bytes.slice(i, i + n));
    i += n;
  }
  if (out.length % 2) out.push(128); // segments are even length; 128 is a no-op
  return out;
}

/** An RLE frame: header then the segments, each already PackBits-encoded. */
function rleFrame(segments: number[][], headerCount = segments.length): Uint8Array {
  const header = new Uint32Array(16);
  header[0] = headerCount;
  let offset = 64;
  segments.forEach((s, i) => { header[i + 1] = offset; offset += s.length; });
  const out = new Uint8Array(offset);
  out.set(new Uint8Array(header.buffer), 0);
  let at = 64;
  for (const s of segments) { out.set(s, at); at += s.length; }
  return out;
}

describe('RLE frames', () => {
  const rle = { transferSyntaxUid: RLE, encapsulated: true };

  it('decodes 16-bit grey: segment 1 high bytes, segment 2 low bytes', async () => {
    const samples = [-2, 0x1234, 0x1234, 0x1234, 0x1234, 5, -32768, 32767, 0, 0, 0, 0];
    const u = samples.map((v) => v & 0xffff);
    const frame = rleFrame([packBits(u.map((v) => v >> 8)), packBits(u.map((v) => v & 0xff))]);
    const { pixels } = await decodeFrame(frame, instance({ rows: 3, columns: 4, pixelRepresentation: 1, ...rle }));
    assert.ok(pixels instanceof Int16Array);
    assert.deepEqual(values(pixels), samples);
  });

  it('decodes 8-bit RGB: R, G and B segments, interleaved in the output', async () => {
    const pixels = Array.from({ length: 6 }, (_, i) => [i * 10, 100 + (i >> 1), 200]);
    const segments = [0, 1, 2].map((s) => packBits(pixels.map((p) => p[s]!)));
    const image = instance({ rows: 2, columns: 3, bitsAllocated: 8, bitsStored: 8, samplesPerPixel: 3, photometricInterpretation: 'RGB', planarConfiguration: 1, ...rle });
    const decoded = (await decodeFrame(rleFrame(segments), image)).pixels;
    assert.ok(decoded instanceof Uint8Array);
    assert.deepEqual(values(decoded), pixels.flat());
  });

  it('decodes 16-bit RGB: the bytes of R (high first), then G, then B', async () => {
    const px = [[0x0102, 0x0304, 0x0506], [0xa1a2, 0xb3b4, 0xc5c6]];
    const segments = [0, 1, 2].flatMap((s) => [packBits(px.map((p) => p[s]! >> 8)), packBits(px.map((p) => p[s]! & 0xff))]);
    const image = instance({ columns: 2, samplesPerPixel: 3, photometricInterpretation: 'RGB', ...rle });
    assert.deepEqual(values((await decodeFrame(rleFrame(segments), image)).pixels), px.flat());
  });

  it('normalises the bits above Bits Stored, and clamps a run that overshoots the frame', async () => {
    // 4 pixels of 0xF0FF (12 bits stored: 0x0FF); the high-byte run repeats 10 times, not 4.
    const frame = rleFrame([[257 - 10, 0xf0], [257 - 4, 0xff]]);
    const { pixels } = await decodeFrame(frame, instance({ columns: 4, bitsStored: 12, highBit: 11, ...rle }));
    assert.deepEqual(values(pixels), [0xff, 0xff, 0xff, 0xff]);
  });

  it('rejects a frame whose header or segments are broken with CORRUPT_FRAME', async () => {
    const image = instance({ columns: 4, ...rle });
    const good = [packBits([1, 2, 3, 4]), packBits([5, 6, 7, 8])];
    const cases: Array<[string, Uint8Array]> = [
      ['shorter than the header', new Uint8Array(20)],
      ['no segments', rleFrame(good, 0)],
      ['16 segments', rleFrame(good, 16)],
      ['one segment for 16-bit data', rleFrame(good, 1)],
      ['an offset past the end', (() => { const f = rleFrame(good); new DataView(f.buffer).setUint32(8, 5000, true); return f; })()],
      ['a segment that decodes short', rleFrame([packBits([1, 2, 3, 4]), packBits([5, 6])])],
    ];
    for (const [what, frame] of cases) {
      await assert.rejects(decodeFrame(frame, image), isDecodeError('CORRUPT_FRAME', 'RLE'), what);
    }
  });
});

describe('compressed syntaxes without a decoder', () => {
  it('a syntax without a registered decoder rejects with UNSUPPORTED_TRANSFER_SYNTAX, naming the syntax', async () => {
    const known = [...indexedTransferSyntaxes(), ...VIDEO_TRANSFER_SYNTAXES].filter((uid) => transferSyntax(uid)?.encapsulated && !hasDecoder(uid));
    assert.ok(known.length > 0, 'some known compressed syntax has no decoder (video at least)');
    for (const uid of known) {
      const image = instance({ transferSyntaxUid: uid }); // encapsulated from the table
      await assert.rejects(decodeFrame(Uint8Array.of(0xff, 0xd8), image), isDecodeError('UNSUPPORTED_TRANSFER_SYNTAX', transferSyntax(uid)!.name, uid));
    }
    const unknown = instance({ transferSyntaxUid: '1.2.3.4' });
    await assert.rejects(decodeFrame(new Uint8Array(2), unknown), isDecodeError('UNSUPPORTED_TRANSFER_SYNTAX', '1.2.3.4'));
  });
});
