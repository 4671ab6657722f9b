// dicomstream/cornerstone on the real @cornerstonejs/core (its image loader registry, cache and
// metadata registry) in Node, against a real server: imageIds in the server's order and in the
// WADO-RS shape, IImages whose pixels are the reference decodes with the modality LUT applied in
// the array type Cornerstone's own loader picks, metadata modules from the manifest, and
// cancellation.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as cornerstone from '@cornerstonejs/core';
import dicomParser from 'dicom-parser';
import WebSocket from 'ws';
import { createLogger, startServer, type RunningServer } from '../server/index.js';
import { ensureSample } from '../server/sample/make-sample.js';
import { parseImageId, registerDicomStream, type DicomStreamCornerstone } from '../web-client/cornerstone/index.js';
import { corpusDir, filesDir, firstValue, manifest, type ManifestFile } from './helpers/corpus.js';

const FILES = ['CT_small.dcm', 'MR_small.dcm', 'SC_rgb_rle.dcm', 'SC_rgb_dcmtk_+eb+cr.dcm'];

/** The reference decode of frame 1 of a corpus file, as stored values (before the modality LUT). */
function reference(entry: ManifestFile): Int16Array | Uint16Array | Uint8Array {
  const frame = (entry as unknown as { frames: Array<{ reference_file: string }> }).frames[0]!;
  const bytes = readFileSync(join(corpusDir, frame.reference_file));
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  if (entry.bits_allocated === 16) return entry.pixel_representation === 1 ? new Int16Array(buffer) : new Uint16Array(buffer);
  return new Uint8Array(buffer);
}

/** A server on the built-in sample, dicomstream registered on Cornerstone, and its CT series. */
async function withSampleCt(options: { window?: number }, use: (ds: DicomStreamCornerstone, series: { seriesInstanceUid: string }) => Promise<void>): Promise<void> {
  const sampleDir = mkdtempSync(join(tmpdir(), 'dicomstream-cornerstone-sample-'));
  await ensureSample(sampleDir);
  const sample = await startServer({ root: sampleDir, host: '127.0.0.1', port: 0, log: createLogger('silent'), indexDir: false });
  const ds = await registerDicomStream(cornerstone, { url: sample.url, WebSocket, ...options });
  try {
    const series = (await ds.client.listStudies())[0]!.series.find((s) => s.modality === 'CT')!;
    await use(ds, series);
  } finally {
    ds.close();
    await sample.close();
    rmSync(sampleDir, { recursive: true, force: true });
  }
}

describe('dicomstream/cornerstone', () => {
  let dir: string;
  let server: RunningServer;
  let registered: DicomStreamCornerstone;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dicomstream-cornerstone-'));
    for (const f of FILES) copyFileSync(join(filesDir, f), join(dir, f));
    server = await startServer({ root: dir, host: '127.0.0.1', port: 0, log: createLogger('silent'), indexDir: false });
    registered = await registerDicomStream(cornerstone, { url: server.url, WebSocket });
  });

  after(async () => {
    registered?.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('loads every frame through Cornerstone\'s image loader: the reference pixels, modality LUT applied, in Cornerstone\'s array type', async () => {
    for (const name of FILES) {
      const entry = manifest.files.find((m) => m.file === name)!;
      const ids = await registered.imageIdsForSeries(entry.series_instance_uid!);
      const imageId = ids.find((i) => parseImageId(i)?.sopInstanceUid === entry.sop_instance_uid);
      assert.ok(imageId, `${name} in its series' imageIds`);
      assert.deepEqual(parseImageId(imageId), { studyInstanceUid: entry.study_instance_uid, seriesInstanceUid: entry.series_instance_uid, sopInstanceUid: entry.sop_instance_uid, frameNumber: 1 });
      const image = await cornerstone.imageLoader.loadImage(imageId);
      const stored = reference(entry);
      const slope = firstValue(entry.rescale_slope) ?? 1;
      const intercept = firstValue(entry.rescale_intercept) ?? 0;
      const expected = Array.from(stored, (v) => v * slope + intercept);
      const pixels = image.getPixelData();
      assert.deepEqual(Array.from(pixels), expected, `${name}: pixels`);
      const min = Math.min(...expected);
      const max = Math.max(...expected);
      assert.equal(image.minPixelValue, min, name);
      assert.equal(image.maxPixelValue, max, name);
      // Cornerstone's loader: the smallest integer array that holds the values.
      const type = min >= 0 ? (max <= 255 ? 'Uint8Array' : 'Uint16Array') : (min >= -128 && max <= 127 ? 'Int8Array' : 'Int16Array');
      assert.equal(pixels.constructor.name, type, name);
      assert.equal(image.dataType, type);
      assert.equal(image.rows, entry.rows);
      assert.equal(image.columns, entry.columns);
      assert.equal(image.color, entry.samples_per_pixel === 3, name);
      assert.equal(image.slope, slope);
      assert.equal(image.intercept, intercept);
      assert.equal(image.preScale?.scaled, slope !== 1 || intercept !== 0);
      assert.equal(image.sizeInBytes, pixels.byteLength);
      assert.equal(image.voxelManager?.getScalarDataLength(), pixels.length, 'a voxel manager over the pixels');
    }
  });

  it('answers Cornerstone\'s metadata modules from the manifest', async () => {
    const entry = manifest.files.find((m) => m.file === 'MR_small.dcm')!;
    const [imageId] = await registered.imageIdsForSeries(entry.series_instance_uid!);
    const pixel = cornerstone.metaData.get('imagePixelModule', imageId!);
    assert.equal(pixel.rows, entry.rows);
    assert.equal(pixel.bitsStored, entry.bits_stored);
    assert.equal(pixel.photometricInterpretation, 'MONOCHROME2');
    const plane = cornerstone.metaData.get('imagePlaneModule', imageId!);
    assert.equal(plane.imagePositionPatient.length, 3);
    assert.equal(plane.rowCosines.length, 3);
    assert.ok(plane.rowPixelSpacing > 0 && plane.columnPixelSpacing > 0);
    const frameOfReference = dicomParser.parseDicom(readFileSync(join(filesDir, 'MR_small.dcm'))).string('x00200052');
    assert.ok(frameOfReference);
    assert.equal(plane.frameOfReferenceUID, frameOfReference, 'the Frame of Reference UID from the file');
    assert.deepEqual(cornerstone.metaData.get('voiLutModule', imageId!).windowCenter, [entry.window_center]);
    assert.equal(cornerstone.metaData.get('generalSeriesModule', imageId!).modality, (entry as unknown as { modality: string }).modality);
    assert.equal(cornerstone.metaData.get('sopCommonModule', imageId!).sopInstanceUID, entry.sop_instance_uid);
    assert.equal(cornerstone.metaData.get('transferSyntax', imageId!).transferSyntaxUID, entry.transfer_syntax_uid);
    assert.equal(cornerstone.metaData.get('generalStudyModule', imageId!).studyInstanceUID, entry.study_instance_uid);
    assert.equal(cornerstone.metaData.get('imagePixelModule', 'wadors:/not/ours'), undefined, 'other imageIds are left to other providers');
  });

  it('cancels a load when Cornerstone cancels it, and loads the image again afterwards', async () => {
    const entry = manifest.files.find((m) => m.file === 'CT_small.dcm')!;
    const [imageId] = await registered.imageIdsForSeries(entry.series_instance_uid!);
    const object = registered.loadImage(imageId!, { requestType: 'prefetch' });
    object.cancelFn?.();
    await assert.rejects(object.promise, { code: 'LOAD_CANCELLED' });
    const again = await registered.loadImage(imageId!, { requestType: 'interaction' }).promise;
    assert.equal(again.getPixelData().length, entry.rows! * entry.columns!);
  });

  it('fills a volume through Cornerstone\'s streaming image volume loader, slice for slice the images the loader gives', async () => {
    // Cornerstone's volume code reads navigator.userAgent, which browsers have and Node 20 lacks (21 has it).
    (globalThis as { navigator?: unknown }).navigator ??= { userAgent: 'Node.js', platform: process.platform, maxTouchPoints: 0 };
    await withSampleCt({}, async (ds, series) => {
      const imageIds = await ds.imageIdsForSeries(series.seriesInstanceUid);
      const manifestSeries = await ds.client.openSeries(series.seriesInstanceUid);
      cornerstone.volumeLoader.registerVolumeLoader('cornerstoneStreamingImageVolume', cornerstone.cornerstoneStreamingImageVolumeLoader as never);
      const volume = await cornerstone.volumeLoader.createAndCacheVolume('cornerstoneStreamingImageVolume:dicomstream-ct', { imageIds });
      const first = manifestSeries.instances[0]!;
      const frameOfReference = cornerstone.metaData.get('imagePlaneModule', imageIds[0]!).frameOfReferenceUID as string;
      assert.ok(frameOfReference, 'the slices have a Frame of Reference UID');
      assert.equal((volume.metadata as { FrameOfReferenceUID?: string }).FrameOfReferenceUID, frameOfReference, 'the volume is in that frame of reference');
      assert.deepEqual(volume.dimensions, [first.columns, first.rows, imageIds.length]);
      assert.equal(volume.spacing[0], first.pixelSpacing[1]);
      assert.equal(volume.spacing[1], first.pixelSpacing[0]);
      const step = Math.hypot(...first.imagePositionPatient.map((v, i) => manifestSeries.instances[1]!.imagePositionPatient[i]! - v));
      assert.ok(Math.abs(volume.spacing[2] - step) < 1e-6, `slice spacing ${volume.spacing[2]} from the positions (${step})`);
      await new Promise<void>((ok, fail) => {
        (volume as unknown as { load: (cb: (e: { error?: unknown; framesProcessed?: number; totalNumFrames?: number }) => void) => void }).load((e) => {
          if (e.error) fail(e.error);
          else if (e.framesProcessed === e.totalNumFrames) ok();
        });
      });
      const voxels = volume.voxelManager!.getCompleteScalarDataArray?.() as ArrayLike<number>;
      assert.ok(voxels, 'the volume has its voxels');
      const sliceSize = first.rows * first.columns;
      for (const k of [0, Math.floor(imageIds.length / 2), imageIds.length - 1]) {
        const image = await ds.loadImage(volume.imageIds[k]!).promise;
        const expected = image.getPixelData();
        const slice = Array.prototype.slice.call(voxels, k * sliceSize, (k + 1) * sliceSize) as number[];
        assert.deepEqual(slice, Array.from(expected), `volume slice ${k} is the image ${volume.imageIds[k]}`);
      }
    });
  });

  it('follows the image a viewport shows: the server sends the rest of the stack outward from it', async () => {
    // A small window, so that what is still queued on the server is most of the stack.
    await withSampleCt({ window: 2 * 1024 * 1024 }, async (ds, series) => {
      const imageIds = await ds.imageIdsForSeries(series.seriesInstanceUid);
      const element = new EventTarget();
      cornerstone.eventTarget.dispatchEvent(new CustomEvent(cornerstone.Enums.Events.ELEMENT_ENABLED, { detail: { element, viewportId: 'stack' } }));
      const arrived: number[] = [];
      // Cornerstone prefetching the whole stack from the first image...
      const loads = imageIds.map((id, i) => ds.loadImage(id, { requestType: 'prefetch' }).promise.then(() => { arrived.push(i); }));
      // ...and the user jumping to image 100.
      element.dispatchEvent(new CustomEvent(cornerstone.Enums.Events.STACK_NEW_IMAGE, { detail: { imageId: imageIds[100], imageIdIndex: 100 } }));
      await Promise.all(loads);
      assert.equal(arrived.length, imageIds.length);
      const at = (i: number) => arrived.indexOf(i);
      assert.ok(at(100) < at(30), `image 100 (arrived ${at(100)}th) before image 30 (${at(30)}th)`);
      assert.ok(at(95) < at(40) && at(105) < at(40), 'the neighbours of the image on screen before images far from it');
    });
  });
});

interface PetCase {
  case: string; series_instance_uid: string; suvbw: number | null;
  files: Array<{ sop_instance_uid: string; slope: number; intercept: number; stored: number[] }>;
}

describe('dicomstream/cornerstone on PET: SUV scaling (scalingModule)', () => {
  let dir: string;
  let indexDir: string;
  let cases: PetCase[];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'dicomstream-pet-'));
    indexDir = mkdtempSync(join(tmpdir(), 'dicomstream-pet-index-'));
    cases = JSON.parse(execFileSync('/usr/bin/python3', [join(import.meta.dirname, 'helpers', 'pet-series.py'), dir], { encoding: 'utf8' })) as PetCase[];
    // Whole-second mtimes, which utimes can set back exactly after a file is changed.
    for (const name of readdirSync(dir)) utimesSync(join(dir, name), 1_700_000_000, 1_700_000_000);
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(indexDir, { recursive: true, force: true });
  });

  /** Each case's scalingModule and images, through a server that indexes the folder into indexDir (or reads it back). */
  async function loadCases(check: (c: PetCase, imageIds: string[]) => Promise<void>): Promise<void> {
    const server = await startServer({ root: dir, host: '127.0.0.1', port: 0, log: createLogger('silent'), indexDir });
    const ds = await registerDicomStream(cornerstone, { url: server.url, WebSocket });
    try {
      for (const c of cases) await check(c, await ds.imageIdsForSeries(c.series_instance_uid));
    } finally {
      ds.close();
      await server.close();
    }
  }

  it('gives SUVbw factors worked out over the whole series, and SUV values prescaled as Cornerstone\'s loader makes them', async () => {
    await loadCases(async (c, imageIds) => {
      assert.equal(imageIds.length, c.files.length, c.case);
      for (const imageId of imageIds) {
        const file = c.files.find((f) => f.sop_instance_uid === parseImageId(imageId)!.sopInstanceUid)!;
        const scaling = cornerstone.metaData.get('scalingModule', imageId) as { suvbw: number; suvlbm?: number; suvbsa?: number } | undefined;
        const image = await cornerstone.imageLoader.loadImage(imageId);
        if (c.suvbw === null) {
          assert.equal(scaling, undefined, `${c.case}: no SUV without a patient weight`);
          assert.deepEqual(Array.from(image.getPixelData()), Array.from(Float32Array.from(file.stored, (v) => v * file.slope + file.intercept)), `${c.case}: modality LUT only`);
          assert.equal(cornerstone.utilities.isPTPrescaledWithSUV(image), false);
          continue;
        }
        assert.ok(scaling, `${c.case}: a scalingModule`);
        assert.ok(Math.abs(scaling.suvbw - c.suvbw) <= 1e-12 * c.suvbw, `${c.case}: suvbw ${scaling.suvbw}, QIBA's formula gives ${c.suvbw}`);
        if (c.case === 'bqml') assert.ok(scaling.suvlbm! > 0 && scaling.suvbsa! > 0, 'lean body mass and body surface area factors from size and sex');
        const expected = Float32Array.from(file.stored, (v) => scaling.suvbw * (v * file.slope + file.intercept));
        const pixels = image.getPixelData();
        assert.ok(pixels instanceof Float32Array, `${c.case}: SUVs in a Float32Array`);
        assert.deepEqual(Array.from(pixels), Array.from(expected), `${c.case}: SUV values`);
        assert.equal(image.minPixelValue, scaling.suvbw * (Math.min(...file.stored) * file.slope + file.intercept));
        assert.equal(image.maxPixelValue, scaling.suvbw * (Math.max(...file.stored) * file.slope + file.intercept));
        assert.equal(image.slope, file.slope, 'the image keeps the modality LUT slope');
        assert.ok(cornerstone.utilities.isPTPrescaledWithSUV(image), 'Cornerstone sees the image as prescaled with SUV (its PT viewports\' default window)');
        assert.equal(cornerstone.utilities.getScalingParameters(imageId).suvbw, scaling.suvbw);
      }
    });
  });

  it('keeps what SUV needs in the on-disk index: a restarted server gives the same factors without parsing the files again', async () => {
    const first = new Map<string, unknown>();
    await loadCases(async (_c, imageIds) => { for (const id of imageIds) first.set(id, cornerstone.metaData.get('scalingModule', id)); });
    // Another patient weight of the same length, the files' size and mtime kept: only the index
    // can still give the first factors.
    for (const name of readdirSync(dir).filter((f) => f.startsWith('bqml-'))) {
      const path = join(dir, name);
      const bytes = readFileSync(path);
      const at = bytes.indexOf(Buffer.from('75'), bytes.indexOf(Buffer.from([0x10, 0x00, 0x30, 0x10])));
      bytes.write('95', at, 'latin1');
      writeFileSync(path, bytes);
      utimesSync(path, 1_700_000_000, 1_700_000_000);
    }
    await loadCases(async (_c, imageIds) => { for (const id of imageIds) assert.deepEqual(cornerstone.metaData.get('scalingModule', id), first.get(id), id); });
  });
});
