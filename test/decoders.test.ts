// The decoder table: every syntax the transfer syntax table gives a codec has one, each codec
// module loads; one JPEG entry point picks the decoder from the frame header, whatever the
// syntax; a Decoders of one's own leaves the default untouched.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { transferSyntaxes, VIDEO_TRANSFER_SYNTAXES } from '../shared/transfer-syntax.js';
import { jpegRoute } from '../web-client/decode/codecs/jpeg.js';
import { SOF0, SOF1, SOF3, type JpegFrameHeader } from '../web-client/decode/codecs/jpeg-stream.js';
import { CODEC_LOADERS } from '../web-client/decode/decoders.js';
import { DecodeError, Decoders, decodeFrame, hasDecoder, type DecodeInstance } from '../web-client/decode/index.js';
import { closeDecoders, createDecodePool } from '../web-client/index.js';

function header(marker: number, precision: number, sampling: Array<[number, number]>): JpegFrameHeader {
  return { marker, precision, rows: 16, columns: 16, components: sampling.map(([h, v], i) => ({ id: i + 1, h, v, quantTable: 0 })) };
}

const grey = (transferSyntaxUid: string): DecodeInstance => ({
  rows: 1, columns: 2, bitsAllocated: 8, bitsStored: 8, highBit: 7, pixelRepresentation: 0, samplesPerPixel: 1,
  photometricInterpretation: 'MONOCHROME2', planarConfiguration: 0, transferSyntaxUid,
});

describe('JPEG entry point', () => {
  it('sends 8-bit sequential DCT in layouts libjpeg-turbo decodes as the references to it', () => {
    for (const marker of [SOF0, SOF1]) {
      assert.equal(jpegRoute(header(marker, 8, [[1, 1]])), 'libjpeg-turbo', 'grey');
      assert.equal(jpegRoute(header(marker, 8, [[2, 2], [1, 1], [1, 1]])), 'libjpeg-turbo', '4:2:0');
      assert.equal(jpegRoute(header(marker, 8, [[2, 1], [1, 1], [1, 1]])), 'libjpeg-turbo', '4:2:2');
      assert.equal(jpegRoute(header(marker, 8, [[4, 1], [1, 1], [1, 1]])), 'libjpeg-turbo', '4:1:1');
    }
  });

  it('sends 12-bit DCT and the sampling layouts libjpeg-turbo gets wrong to our DCT decoder', () => {
    assert.equal(jpegRoute(header(SOF1, 12, [[1, 1]])), 'dct', '12-bit');
    assert.equal(jpegRoute(header(SOF0, 8, [[1, 2], [1, 1], [1, 1]])), 'dct', '4:4:0');
    assert.equal(jpegRoute(header(SOF0, 8, [[4, 2], [1, 1], [1, 1]])), 'dct', '4×2 luminance');
  });

  it('sends lossless (SOF3) of any precision to the lossless decoder', () => {
    for (const precision of [2, 8, 12, 16]) assert.equal(jpegRoute(header(SOF3, precision, [[1, 1]])), 'lossless', `${precision}-bit`);
  });

  it('rejects the other processes with CORRUPT_FRAME, naming them', () => {
    for (const [marker, name] of [[0xc2, 'SOF2 (progressive DCT)'], [0xc9, 'SOF9 (arithmetic extended sequential DCT)'], [0xc7, 'SOF7 (differential lossless)']] as const) {
      assert.throws(() => jpegRoute(header(marker, 8, [[1, 1]])), (e: unknown) => e instanceof DecodeError && e.code === 'CORRUPT_FRAME' && e.message.includes(name));
    }
  });
});

describe('decoder table', () => {
  it('every syntax with a codec in the transfer syntax table has that decoder, and every compressed image syntax but JPEG XL has one', () => {
    const withCodec = transferSyntaxes().filter((t) => t.decoder);
    assert.ok(withCodec.length >= 12, `${withCodec.length} syntaxes with a codec`);
    for (const t of withCodec) assert.ok(hasDecoder(t.uid), `${t.name} has a decoder`);
    const without = transferSyntaxes().filter((t) => t.encapsulated && !t.decoder && !VIDEO_TRANSFER_SYNTAXES.has(t.uid)).map((t) => t.name);
    assert.deepEqual(without, ['JPEG XL Lossless', 'JPEG XL JPEG Recompression', 'JPEG XL']);
    for (const t of transferSyntaxes().filter((x) => !x.encapsulated)) assert.equal(hasDecoder(t.uid), false, `${t.name} is decoded natively`);
  });

  it('every codec module loads and gives a decoder function', async () => {
    for (const [name, load] of Object.entries(CODEC_LOADERS)) assert.equal(typeof await load(), 'function', name);
  });

  it('a Decoders of its own takes a codec without changing the default, and decodeFrame uses the one it is given', async () => {
    const JPEG_XL = '1.2.840.10008.1.2.4.110';
    const own = new Decoders();
    let calls = 0;
    own.register(JPEG_XL, async () => (bytes) => { calls++; return Uint8Array.from(bytes); });
    assert.equal(own.has(JPEG_XL), true);
    assert.equal(hasDecoder(JPEG_XL), false, 'the default decoders are untouched');
    const { pixels } = await decodeFrame(Uint8Array.of(7, 9), grey(JPEG_XL), { decoders: own });
    assert.deepEqual(Array.from(pixels), [7, 9]);
    assert.equal(calls, 1);
    await assert.rejects(decodeFrame(Uint8Array.of(7, 9), grey(JPEG_XL)), (e: unknown) => e instanceof DecodeError && e.code === 'UNSUPPORTED_TRANSFER_SYNTAX');
  });

  it('loads a codec once, and tries again after a failed load', async () => {
    const uid = '1.2.840.10008.1.2.4.110';
    const own = new Decoders();
    let loads = 0;
    own.register(uid, async () => {
      loads++;
      if (loads === 1) throw new Error('network down');
      return (bytes) => bytes;
    });
    await assert.rejects(own.load(uid)!, /network down/);
    const [a, b] = await Promise.all([own.load(uid)!, own.load(uid)!]);
    assert.equal(a, b);
    await own.load(uid);
    assert.equal(loads, 2, 'one failed load, then one that is kept');
  });
});

describe('decode pool in Node', () => {
  it('decodes in-process with the browser pool\'s calls; closed, it rejects with POOL_TERMINATED', async () => {
    const pool = createDecodePool(2);
    pool.warm();
    assert.equal(pool.running, 0, 'no workers in Node');
    const { pixels } = await pool.decode(Uint8Array.of(3, 250), grey('1.2.840.10008.1.2.1'));
    assert.deepEqual(Array.from(pixels), [3, 250]);
    pool.close();
    await assert.rejects(pool.decode(Uint8Array.of(3, 250), grey('1.2.840.10008.1.2.1')), (e: unknown) => e instanceof DecodeError && e.code === 'POOL_TERMINATED');
    closeDecoders(); // nothing to stop in Node, and the default decodeFrame goes on
    assert.equal((await decodeFrame(Uint8Array.of(1, 2), grey('1.2.840.10008.1.2.1'))).pixels.length, 2);
  });
});
