// The parser index against every file of the conformance corpus: attributes, frame count, and
// each frame's bytes as stored (read back through the index's byte ranges).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { IndexError, indexFile } from '../server/index.js';
import { FrameReader } from '../server/files/frame-reader.js';
import { expectation, filesDir, firstValue, manifest, sha256 } from './helpers/corpus.js';
import { frameBytes } from './helpers/frames.js';


describe('parser index on the corpus', () => {
  const reader = new FrameReader();
  for (const f of manifest.files) {
    const expected = expectation(f);
    it(`${f.file}: ${expected.outcome}`, async () => {
      const path = join(filesDir, f.file);
      if (expected.outcome === 'skipped') {
        await assert.rejects(indexFile(path), (e: unknown) => {
          assert.ok(e instanceof IndexError, `an IndexError, not ${String(e)}`);
          assert.ok(expected.codes.includes(e.code), `code ${e.code} is one of ${expected.codes.join(', ')}`);
          assert.ok(e.message.length > 5, 'the reason is said');
          return true;
        });
        return;
      }
      const file = await indexFile(path);
      const image = file.image;
      assert.equal(image.sopInstanceUid, f.sop_instance_uid);
      assert.equal(file.series.seriesInstanceUid, f.series_instance_uid ?? '');
      assert.equal(file.study.studyInstanceUid, f.study_instance_uid ?? '');
      assert.equal(image.rows, f.rows);
      assert.equal(image.columns, f.columns);
      assert.equal(image.bitsAllocated, f.bits_allocated);
      if (f.bits_stored !== null) assert.equal(image.bitsStored, f.bits_stored);
      if (f.high_bit !== null) assert.equal(image.highBit, f.high_bit);
      assert.equal(image.pixelRepresentation, f.pixel_representation ?? 0);
      assert.equal(image.samplesPerPixel, f.samples_per_pixel ?? 1);
      assert.equal(image.photometricInterpretation, f.photometric_interpretation ?? '');
      if (f.planar_configuration !== null) assert.equal(image.planarConfiguration, f.planar_configuration);
      assert.equal(image.transferSyntaxUid, f.transfer_syntax_uid ?? f.transfer_syntax_effective);
      assert.equal(image.numberOfFrames, f.pixel_data?.frames_effective);
      assert.equal(image.encapsulated, Boolean(f.pixel_data?.encapsulated));
      assert.equal(image.bigEndian, f.edge_cases.includes('big_endian') && !f.pixel_data?.encapsulated);
      const slope = firstValue(f.rescale_slope);
      if (slope !== undefined) assert.equal(image.rescaleSlope, slope);
      const intercept = firstValue(f.rescale_intercept);
      if (intercept !== undefined) assert.equal(image.rescaleIntercept, intercept);
      const center = firstValue(f.window_center);
      if (center !== undefined) assert.equal(image.windowCenter[0], center);
      const width = firstValue(f.window_width);
      if (width !== undefined) assert.equal(image.windowWidth[0], width);
      assert.equal(file.source, expected.kind === 'inflated' ? 'inflated' : 'file');
      assert.equal(image.frameSource, file.source);
      assert.equal(file.frames.length, expected.hashes.length, 'frame count');
      for (let n = 0; n < file.frames.length; n++) {
        assert.equal(sha256(await frameBytes(reader, file, n)), expected.hashes[n], `frame ${n + 1} bytes as stored`);
      }
    });
  }

  it('reads only the head of a file: a native frame is a byte range of the file', async () => {
    const f = manifest.files.find((x) => !x.pixel_data?.encapsulated && (x.pixel_data?.stored_frame_sha256?.length ?? 0) > 1 && !x.gzip_wrapped);
    assert.ok(f, 'the corpus has a native multi-frame file');
    const file = await indexFile(join(filesDir, f.file));
    const whole = await readFile(join(filesDir, f.file));
    file.frames.forEach((frame, i) => {
      assert.equal(frame.segments.length, 2, 'one range per native frame');
      const [start, length] = frame.segments as [number, number];
      assert.equal(sha256(whole.subarray(start, start + length)), f.pixel_data!.stored_frame_sha256![i]);
    });
  });

  it('notes what it worked around: an offset table that does not fit, extra pixel bytes, a bad Number of Frames', async () => {
    const warned = await Promise.all(manifest.files
      .filter((f) => expectation(f).outcome === 'served' && f.edge_cases.some((e) => ['invalid_offset_table', 'pixel_data_longer_than_expected', 'invalid_number_of_frames'].includes(e)))
      .map((f) => indexFile(join(filesDir, f.file))));
    assert.ok(warned.length > 0);
    for (const file of warned) assert.ok(file.warnings.length > 0, `${file.path} has a warning`);
  });
});
