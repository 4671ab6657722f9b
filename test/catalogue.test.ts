// Grouping into studies and series, the order of instances, and which copy of a duplicated
// SOP Instance UID is served.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Catalogue, indexFile, type IndexedFile } from '../server/index.js';
import type { ImageAttributes } from '../shared/protocol.js';
import { filesDir } from './helpers/corpus.js';

function file(path: string, image: Partial<ImageAttributes>, series = '1.2.3', study = '1.2', studyDate = '20200101'): IndexedFile {
  return {
    path, size: 1, mtimeMs: 0,
    study: { studyInstanceUid: study, patientName: 'P', patientId: 'ID', studyDate, studyTime: '', studyDescription: '', accessionNumber: '' },
    series: { seriesInstanceUid: series, modality: 'CT', seriesDescription: '', seriesNumber: 1 },
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
});
