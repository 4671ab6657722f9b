// Grouping into studies and series, the order of instances, and which copy of a duplicated
// SOP Instance UID is served.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Catalogue, indexFile, type IndexedFile } from '../server/index.js';
import type { ImageAttributes } from '../shared/protocol.js';
import { codestreamSize } from '../server/index/codestream-size.js';
import { filesDir } from './helpers/corpus.js';

function file(path: string, image: Partial<ImageAttributes>, series = '1.2.3', study = '1.2', studyDate = '20200101'): IndexedFile {
  return {
    path, size: 1, mtimeMs: 0,
    study: { studyInstanceUid: study, patientName: 'P', patientId: 'ID', studyDate, studyTime: '', studyDescription: '', accessionNumber: '', patientBirthDate: '', patientSex: '', studyId: '', referringPhysicianName: '' },
    series: { seriesInstanceUid: series, modality: 'CT', seriesDescription: '', seriesNumber: 1, seriesDate: '', seriesTime: '' },
    image: {
      sopInstanceUid: path, instanceNumber: 0, imagePositionPatient: [], imageOrientationPatient: [],
      transferSyntaxUid: '1.2.840.10008.1.2.1', lossyImageCompression: false, ...image,
    } as ImageAttributes,
    frames: [{ segments: [0, 1], length: 1, bitOffset: 0 }],
    source: 'file', warnings: [],
  };
}

describe('catalogue', () => {
  it('sorts a series along the slice normal, whatever the instance numbers say', async () => {
    const axial = [1, 0, 0, 0, 1, 0];
    const c = Catalogue.fromFiles([
      file('a', { instanceNumber: 1, imagePositionPatient: [0, 0, 30], imageOrientationPatient: axial }),
      file('b', { instanceNumber: 2, imagePositionPatient: [0, 0, -10], imageOrientationPatient: axial }),
      file('c', { instanceNumber: 3, imagePositionPatient: [0, 0, 10], imageOrientationPatient: axial }),
    ]);
    assert.deepEqual((await c.series('1.2.3'))!.instances.map((i) => i.sopInstanceUid), ['b', 'c', 'a']);
  });

  it('falls back to instance number where positions are missing', async () => {
    const c = Catalogue.fromFiles([file('x', { instanceNumber: 3 }), file('y', { instanceNumber: 1 }), file('z', { instanceNumber: 2 })]);
    assert.deepEqual((await c.series('1.2.3'))!.instances.map((i) => i.sopInstanceUid), ['y', 'z', 'x']);
  });

  it('groups series into studies, newest study first, with counts', () => {
    const c = Catalogue.fromFiles([
      file('a', {}, 's1', 'old', '20100101'), file('b', {}, 's1', 'old', '20100101'),
      file('c', {}, 's2', 'new', '20240101'), file('d', {}, 's3', 'new', '20240101'),
    ]);
    const { studies, total, nextOffset } = c.listStudies(0, 10);
    assert.equal(total, 2);
    assert.equal(nextOffset, 2);
    assert.deepEqual(studies.map((s) => [s.studyInstanceUid, s.series.length, s.numberOfInstances]), [['new', 2, 2], ['old', 1, 2]]);
    assert.deepEqual(c.listStudies(1, 1).studies.map((s) => s.studyInstanceUid), ['old']);
  });

  it('serves one copy of a duplicated SOP Instance UID: lossless, then more frames, then first by path', async () => {
    const same = { sopInstanceUid: 'dup' };
    const lossy = file('a-lossy', { ...same, transferSyntaxUid: '1.2.840.10008.1.2.4.50' });
    const lossless = file('z-lossless', { ...same });
    const c = Catalogue.fromFiles([lossy, lossless]);
    assert.equal((await c.instance('dup'))!.path, 'z-lossless');
    assert.deepEqual(c.duplicates, [{ path: 'a-lossy', sopInstanceUid: 'dup', servedPath: 'z-lossless' }]);
    const multi = { ...file('m-multi', same), frames: [lossless.frames[0]!, lossless.frames[0]!] };
    assert.equal((await Catalogue.fromFiles([lossless, multi]).instance('dup'))!.path, 'm-multi');
    assert.equal((await Catalogue.fromFiles([file('b', same), file('a', same)]).instance('dup'))!.path, 'a');
  });

  it('on the corpus, serves the native copy of MR_small over its RLE, JPEG-LS and big-endian copies', async () => {
    const names = ['MR_small_RLE.dcm', 'MR_small_jpeg_ls_lossless.dcm', 'MR_small_bigendian.dcm', 'MR_small.dcm'];
    const files = await Promise.all(names.map((n) => indexFile(join(filesDir, n))));
    const c = Catalogue.fromFiles(files);
    assert.equal(c.instanceCount, 1);
    assert.equal((await c.instance(files[0]!.image.sopInstanceUid))!.path, join(filesDir, 'MR_small.dcm'));
    assert.equal(c.duplicates.length, 3);
  });

  it('serves the sound copy over one whose codestream contradicts its attributes (JPEG2000.dcm over its embedded-delimiter twin)', async () => {
    const names = ['JPEG2000-embedded-sequence-delimiter.dcm', 'JPEG2000.dcm'];
    const [damaged, sound] = await Promise.all(names.map((n) => indexFile(join(filesDir, n))));
    assert.equal(damaged!.image.sopInstanceUid, sound!.image.sopInstanceUid, 'the two share a SOP Instance UID');
    assert.equal(damaged!.codestreamMismatch, true);
    assert.ok(damaged!.warnings.some((w) => /codestream says \d+ × 1024, the image is 256 × 1024/.test(w)), damaged!.warnings.join('; '));
    assert.equal(sound!.codestreamMismatch, undefined);
    assert.deepEqual(sound!.warnings, []);
    // The damaged one comes first by path: without the check it was served.
    for (const order of [[damaged!, sound!], [sound!, damaged!]]) {
      assert.equal((await Catalogue.fromFiles(order).instance(sound!.image.sopInstanceUid))!.path, join(filesDir, 'JPEG2000.dcm'));
    }
  });
});

describe('codestream size', () => {
  const siz = (x: number, y: number, xo = 0, yo = 0) => {
    const b = new Uint8Array(4 + 38);
    const v = new DataView(b.buffer);
    b.set([0xff, 0x4f, 0xff, 0x51]);
    v.setUint16(4, 38); v.setUint32(8, x); v.setUint32(12, y); v.setUint32(16, xo); v.setUint32(20, yo);
    return b;
  };
  it('reads JPEG 2000 SIZ (offsets subtracted), JP2-boxed codestreams, JPEG SOFn and JPEG-LS SOF55', () => {
    assert.deepEqual(codestreamSize(siz(512, 256)), { columns: 512, rows: 256 });
    assert.deepEqual(codestreamSize(siz(520, 300, 8, 44)), { columns: 512, rows: 256 });
    const jp2 = new Uint8Array([0, 0, 0, 12, 0x6a, 0x50, 0x20, 0x20, 0x0d, 0x0a, 0x87, 0x0a, ...new Array(20).fill(0), ...siz(64, 32)]);
    assert.deepEqual(codestreamSize(jp2), { columns: 64, rows: 32 });
    const jpeg = (marker: number) => new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0, 0, 0xff, marker, 0x00, 0x0b, 8, 0x01, 0x00, 0x02, 0x80, 1, 1, 0x11, 0]);
    for (const marker of [0xc0, 0xc1, 0xc3, 0xf7]) assert.deepEqual(codestreamSize(jpeg(marker)), { columns: 640, rows: 256 }, marker.toString(16));
    assert.equal(codestreamSize(jpeg(0xc4)), undefined, 'a DHT is not a frame header (and the bytes end there)');
    assert.equal(codestreamSize(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)), undefined);
    assert.equal(codestreamSize(siz(512, 256).subarray(0, 12)), undefined, 'too short to tell');
  });
});
