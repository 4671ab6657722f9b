// The built-in sample and the writer that makes it: the files are valid DICOM that the index
// accepts without a warning, their attributes and pixels are what the phantom says, the sample is
// written once and never left half-written, and an independent
// parser reads the same images.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import dicomParser from 'dicom-parser';
import { Catalogue, indexFile, listFiles, type IndexedFile } from '../server/index.js';
import {
  EXPLICIT_VR_LITTLE_ENDIAN, IMPLEMENTATION_CLASS_UID, uidFromName, uint16Bytes, writeDicom, type DicomElement,
} from '../server/sample/dicom-writer.js';
import { COMPRESSED_CT, ensureSample, SAMPLE_VERSION, SOP_CLASS, type SampleResult } from '../server/sample/make-sample.js';
import { CINE, CT, cineFrame, ctSlice, LUT_IMAGE, paletteIndices, rainbowPalette } from '../server/sample/phantom.js';

const PYTHON = '/usr/bin/python3';
const sum = (values: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i]!;
  return s;
};

describe('writeDicom', () => {
  const minimal = (extra: DicomElement[] = []): DicomElement[] => [
    { tag: 0x00080018, vr: 'UI', value: '1.2.3' }, // odd length: padded with NUL
    { tag: 0x00080016, vr: 'UI', value: SOP_CLASS.secondaryCapture },
    { tag: 0x00100010, vr: 'PN', value: 'A^B' }, // odd length: padded with a space
    ...extra,
  ];

  it('writes the preamble, DICM and a File Meta group with its true length', () => {
    const bytes = writeDicom(minimal());
    assert.deepEqual([...bytes.subarray(0, 128)], new Array<number>(128).fill(0));
    assert.equal(Buffer.from(bytes.subarray(128, 132)).toString('latin1'), 'DICM');
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    assert.equal(Buffer.from(bytes.subarray(136, 138)).toString('latin1'), 'UL');
    const groupLength = view.getUint32(140, true);
    // The first element after the meta group is the data set's first (0008,0016).
    assert.equal(view.getUint16(144 + groupLength, true), 0x0008);
    assert.equal(view.getUint16(146 + groupLength, true), 0x0016);
    const meta = dicomParser.parseDicom(bytes);
    assert.equal(meta.string('x00020010'), EXPLICIT_VR_LITTLE_ENDIAN);
    assert.equal(meta.string('x00020012'), IMPLEMENTATION_CLASS_UID);
    assert.equal(meta.string('x00020003'), '1.2.3');
    assert.deepEqual([...meta.byteArray.subarray(meta.elements.x00020001!.dataOffset, meta.elements.x00020001!.dataOffset + 2)], [0, 1]);
  });

  it('sorts elements, pads odd values per VR and writes sequences with defined lengths', () => {
    const bytes = writeDicom(minimal([
      { tag: 0x00283010, vr: 'SQ', value: [[{ tag: 0x00283003, vr: 'LO', value: 'ODD' }, { tag: 0x00283002, vr: 'US', value: [4, 0, 16] }], []] },
      { tag: 0x00091001, vr: 'OB', value: new Uint8Array([1, 2, 3]) },
      { tag: 0x00280009, vr: 'AT', value: 0x00181063 },
      { tag: 0x00281050, vr: 'DS', value: [40, -1024.25] },
    ]));
    const ds = dicomParser.parseDicom(bytes);
    const raw = (tag: string) => {
      const e = ds.elements[tag]!;
      return Buffer.from(ds.byteArray.subarray(e.dataOffset, e.dataOffset + e.length)).toString('latin1');
    };
    assert.equal(raw('x00080018'), '1.2.3\0');
    assert.equal(raw('x00100010'), 'A^B ');
    assert.equal(raw('x00281050'), '40\\-1024.25 ');
    assert.equal(raw('x00091001'), '\x01\x02\x03\0');
    assert.equal(ds.uint16('x00280009', 0), 0x0018);
    assert.equal(ds.uint16('x00280009', 1), 0x1063);
    const sq = ds.elements.x00283010!;
    assert.equal(sq.hadUndefinedLength ?? false, false);
    assert.equal(sq.items?.length, 2);
    const item = sq.items![0]!.dataSet!;
    assert.equal(item.string('x00283003'), 'ODD');
    assert.equal(item.uint16('x00283002', 2), 16);
    const tags = Object.keys(ds.elements).filter((t) => !t.startsWith('x0002'));
    assert.deepEqual(tags, [...tags].sort(), 'in tag order');
  });

  it('refuses what it cannot write correctly', () => {
    assert.throws(() => writeDicom(minimal([{ tag: 0x00100010, vr: 'PN', value: 'X' }])), /twice/);
    assert.throws(() => writeDicom(minimal([{ tag: 0x00020013, vr: 'SH', value: 'X' }])), /group 0002/);
    assert.throws(() => writeDicom(minimal([{ tag: 0x00280010, vr: 'US', value: 'x' }])), /number/);
    assert.throws(() => writeDicom(minimal([{ tag: 0x00100020, vr: 'LO', value: 'Zoë' }])), /Character Set/);
    assert.throws(() => writeDicom([{ tag: 0x00100010, vr: 'PN', value: 'A' }]), /0008,0016/);
  });

  it('derives UIDs deterministically under 2.25', () => {
    const uid = uidFromName('x');
    assert.equal(uid, uidFromName('x'));
    assert.notEqual(uid, uidFromName('y'));
    assert.match(uid, /^2\.25\.[1-9]\d*$/);
    assert.ok(uid.length <= 64);
    assert.ok(BigInt(uid.slice(5)) < 2n ** 128n);
  });
});

describe('built-in sample', () => {
  let root: string;
  let dir: string;
  let result: SampleResult;
  let generationMs: number;
  let files: IndexedFile[];
  const byFolder = (folder: string) => files.filter((f) => basename(join(f.path, '..')) === folder);

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'dicomstream-sample-'));
    dir = join(root, 'sample');
    const start = performance.now();
    result = await ensureSample(dir);
    generationMs = performance.now() - start;
    files = await Promise.all((await listFiles(dir)).map((p) => indexFile(p)));
  });
  after(async () => { await rm(root, { recursive: true, force: true }); });

  it('is generated quickly, once, and every file is indexed without a warning', (t) => {
    t.diagnostic(`generated ${result.files} files in ${generationMs.toFixed(0)} ms`);
    const compressed = COMPRESSED_CT.reduce((n, c) => n + Math.ceil(CT.slices / c.step), 0);
    assert.deepEqual(result, { dir, created: true, files: CT.slices + 5 + compressed });
    assert.ok(generationMs < 12000, `generation took ${generationMs} ms`); // ~3 s here; a loose bound against flakiness
    assert.equal(files.length, result.files);
    for (const f of files) assert.deepEqual(f.warnings, [], f.path);
    const syntaxes = new Map<string, string>(COMPRESSED_CT.map((c) => [c.folder, c.transferSyntaxUid]));
    for (const f of files) assert.equal(f.image.transferSyntaxUid, syntaxes.get(basename(dirname(f.path))) ?? EXPLICIT_VR_LITTLE_ENDIAN);
  });

  it('holds the CT phantom compressed losslessly (JPEG-LS, JPEG 2000): one fragment per frame, offset table filled', () => {
    for (const c of COMPRESSED_CT) {
      const series = byFolder(c.folder);
      assert.equal(series.length, Math.ceil(CT.slices / c.step), c.folder);
      for (const f of series) {
        assert.equal(f.image.encapsulated, true);
        assert.equal(f.frames.length, 1);
        assert.equal(f.frames[0]!.segments.length, 2, 'one fragment');
        assert.ok(f.frames[0]!.length < CT.rows * CT.columns * 2, 'smaller than the native frame');
        assert.equal(f.image.lossyImageCompression, false);
      }
      // New instances in their own series, not duplicates of the native slices.
      assert.equal(new Set(series.map((f) => f.series.seriesInstanceUid)).size, 1);
      assert.ok(series.every((f) => !byFolder('ct').some((n) => n.image.sopInstanceUid === f.image.sopInstanceUid)));
    }
  });

  it('lists the CT study first with the CT series first', async () => {
    const catalogue = Catalogue.fromFiles(files);
    assert.equal(catalogue.studyCount, 2);
    assert.equal(catalogue.seriesCount, 6 + COMPRESSED_CT.length);
    const [first, second] = catalogue.listStudies(0, 10).studies;
    assert.equal(first!.patientName, 'DICOMSTREAM^PHANTOM');
    assert.equal(first!.series[0]!.modality, 'CT');
    assert.equal(first!.series[0]!.numberOfInstances, CT.slices);
    assert.equal(second!.patientName, 'DICOMSTREAM^LUTS');
    assert.equal(second!.series.length, 3);
    const manifest = (await catalogue.series(first!.series[0]!.seriesInstanceUid))!;
    assert.deepEqual(manifest.instances.map((i) => i.instanceNumber), Array.from({ length: CT.slices }, (_, k) => k + 1));
  });

  it('CT slices carry the CT image attributes', () => {
    const ct = byFolder('ct');
    assert.equal(ct.length, CT.slices);
    assert.ok(CT.slices >= 120);
    for (const f of ct) {
      const i = f.image;
      const k = i.instanceNumber - 1;
      assert.equal(i.sopClassUid, SOP_CLASS.ct);
      assert.equal(f.series.modality, 'CT');
      assert.equal(f.study.patientName, 'DICOMSTREAM^PHANTOM');
      assert.deepEqual([i.rows, i.columns, i.bitsAllocated, i.bitsStored, i.highBit, i.pixelRepresentation], [512, 512, 16, 12, 11, 0]);
      assert.equal(i.photometricInterpretation, 'MONOCHROME2');
      assert.deepEqual([i.hasRescale, i.rescaleIntercept, i.rescaleSlope, i.rescaleType], [true, -1024, 1, 'HU']);
      assert.deepEqual(i.windowCenter, [40, 400]);
      assert.deepEqual(i.windowWidth, [400, 1800]);
      assert.deepEqual(i.windowExplanation, ['SOFT TISSUE', 'BONE']);
      assert.deepEqual(i.imageOrientationPatient, [1, 0, 0, 0, 1, 0]);
      assert.deepEqual(i.pixelSpacing, [0.7, 0.7]);
      assert.equal(i.sliceThickness, 1.25);
      assert.equal(i.imagePositionPatient[2], -75 + 1.25 * k);
      assert.equal(f.frames.length, 1);
      assert.equal(f.frames[0]!.length, 512 * 512 * 2);
    }
    assert.equal(new Set(ct.map((f) => f.image.sopInstanceUid)).size, CT.slices);
  });

  it('CT pixels are the phantom, and change from slice to slice', async () => {
    const ct = byFolder('ct');
    const stored = async (k: number) => {
      const f = ct.find((c) => c.image.instanceNumber === k + 1)!;
      const [offset, length] = f.frames[0]!.segments as [number, number];
      return (await readFile(f.path)).subarray(offset, offset + length);
    };
    for (const k of [0, 61, CT.slices - 1]) {
      assert.ok(Buffer.from(uint16Bytes(ctSlice(k))).equals(await stored(k)), `slice ${k}`);
    }
    const a = ctSlice(40);
    const b = ctSlice(80);
    let differing = 0;
    for (let i = 0; i < a.length; i++) if (Math.abs(a[i]! - b[i]!) > 50) differing++;
    assert.ok(differing > 5000, `slices 40 and 80 differ in ${differing} pixels beyond the noise`);
    // Air, brain and bone are where a head phantom has them (stored = HU + 1024).
    const mid = ctSlice(60);
    assert.ok(Math.abs(mid[10 * 512 + 10]! - 24) <= 12, 'air in the corner');
    assert.ok(Math.abs(mid[256 * 512 + 256]! - 1024 - 30) <= 20, 'soft tissue in the middle');
    assert.ok(mid.some((v) => v >= 2000), 'bone somewhere');
  });

  it('holds a multi-frame image whose frames differ', () => {
    const [cine] = byFolder('cine');
    const i = cine!.image;
    assert.equal(i.sopClassUid, SOP_CLASS.multiFrameGrayscaleWord);
    assert.deepEqual([i.numberOfFrames, cine!.frames.length, i.rows, i.columns, i.bitsAllocated, i.bitsStored], [24, 24, 256, 256, 16, 12]);
    assert.notEqual(cine!.series.seriesInstanceUid, byFolder('ct')[0]!.series.seriesInstanceUid);
    assert.notDeepEqual(cineFrame(0), cineFrame(CINE.frames / 2));
  });

  it('holds an RGB test card', () => {
    const [rgb] = byFolder('rgb');
    const i = rgb!.image;
    assert.equal(i.sopClassUid, SOP_CLASS.secondaryCapture);
    assert.deepEqual([i.rows, i.columns, i.samplesPerPixel, i.planarConfiguration, i.bitsAllocated, i.photometricInterpretation], [384, 512, 3, 0, 8, 'RGB']);
    assert.equal(rgb!.frames[0]!.length, 384 * 512 * 3);
  });

  it('holds the palette, Modality LUT and VOI LUT images in their own study', () => {
    const luts = byFolder('luts');
    assert.equal(luts.length, 3);
    assert.equal(new Set(luts.map((f) => f.series.seriesInstanceUid)).size, 3);
    for (const f of luts) assert.equal(f.study.patientName, 'DICOMSTREAM^LUTS');
    const palette = luts.find((f) => f.image.photometricInterpretation === 'PALETTE COLOR')!.image;
    const rainbow = rainbowPalette();
    for (const [lut, expected] of [[palette.redPalette, rainbow.red], [palette.greenPalette, rainbow.green], [palette.bluePalette, rainbow.blue]] as const) {
      assert.ok(lut);
      assert.deepEqual([lut.numberOfEntries, lut.firstMappedValue, lut.bitsPerEntry, lut.bytesPerEntry], [256, 0, 16, 2]);
      assert.deepEqual(lut.data, uint16Bytes(expected));
    }
    assert.equal(palette.bitsAllocated, 8);

    const modality = luts.find((f) => f.image.modalityLut)!.image;
    assert.equal(modality.hasRescale, false);
    assert.deepEqual([modality.modalityLut!.numberOfEntries, modality.modalityLut!.bitsPerEntry, modality.modalityLut!.modalityLutType], [4096, 16, 'US']);
    assert.equal(modality.modalityLut!.data.length, 8192);
    assert.equal(modality.voiLuts.length, 0);

    const voi = luts.find((f) => f.image.voiLuts.length > 0)!.image;
    assert.deepEqual(voi.voiLuts.map((l) => [l.numberOfEntries, l.firstMappedValue, l.bitsPerEntry, l.explanation]),
      [[4096, 0, 16, 'SIGMOID'], [4096, 0, 16, 'GAMMA 2.2']]);
    assert.equal(voi.modalityLut, null);
  });

  it('a second call finds the sample and returns at once', async () => {
    const start = performance.now();
    assert.deepEqual(await ensureSample(dir), { dir, created: false, files: result.files });
    assert.ok(performance.now() - start < 200);
  });

  it('an interrupted run does not count as complete, and its leftovers are removed', async () => {
    const other = join(root, 'other');
    // A run that died mid-way leaves its temp sibling behind, even one holding a marker.
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const leftover = `${other}.partial-${dead}-0000`;
    await mkdir(join(leftover, 'ct'), { recursive: true });
    await writeFile(join(leftover, 'ct', 'slice-001.dcm'), 'half');
    await writeFile(join(leftover, '.complete'), JSON.stringify({ version: SAMPLE_VERSION, files: 1 }));
    const made = await ensureSample(other);
    assert.equal(made.created, true);
    assert.equal(made.files, result.files);
    assert.deepEqual((await readdir(root)).sort(), ['other', 'sample']);
  });

  it('replaces an older sample but never a folder that is not one', async () => {
    const old = join(root, 'old');
    await mkdir(old);
    await writeFile(join(old, '.complete'), JSON.stringify({ version: SAMPLE_VERSION - 1, files: 1 }));
    await writeFile(join(old, 'stale.dcm'), 'x');
    assert.equal((await ensureSample(old)).created, true);
    assert.ok(!(await readdir(old)).includes('stale.dcm'));

    const foreign = join(root, 'foreign');
    await mkdir(foreign);
    await writeFile(join(foreign, 'mine.txt'), 'keep me');
    await assert.rejects(ensureSample(foreign), /not empty/);
    assert.equal(await readFile(join(foreign, 'mine.txt'), 'utf8'), 'keep me');
  });

  it('reads the same with pydicom', () => {
    // An independent reader is the point of this check: without it the test fails rather than passes unseen.
    const probe = spawnSync(PYTHON, ['-c', 'import pydicom, numpy'], { encoding: 'utf8' });
    assert.equal(probe.status, 0, `pydicom and numpy are needed (apt-get install python3-pydicom python3-numpy): ${probe.stderr ?? probe.error}`);
    const ctFile = byFolder('ct').find((f) => f.image.instanceNumber === 31)!;
    const paletteFile = byFolder('luts').find((f) => f.image.photometricInterpretation === 'PALETTE COLOR')!;
    const cineFile = byFolder('cine')[0]!;
    const script = `
import json, sys, warnings
warnings.simplefilter('error')  # a warning from pydicom means a malformed file
import pydicom
out = []
for path in sys.argv[1:]:
    ds = pydicom.dcmread(path)
    a = ds.pixel_array
    out.append({'rows': int(ds.Rows), 'columns': int(ds.Columns), 'frames': int(getattr(ds, 'NumberOfFrames', 1)),
                'sum': int(a.astype('int64').sum()), 'shape': list(a.shape), 'sop': ds.SOPInstanceUID,
                'meta_sop': ds.file_meta.MediaStorageSOPInstanceUID, 'patient': str(ds.PatientName),
                'red': [int(v) for v in ds.RedPaletteColorLookupTableData[:8]] if 'RedPaletteColorLookupTableData' in ds else None})
print(json.dumps(out))
`;
    const run = spawnSync(PYTHON, ['-c', script, ctFile.path, paletteFile.path, cineFile.path], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const [ct, palette, cine] = JSON.parse(run.stdout) as Array<{ rows: number; columns: number; frames: number; sum: number; shape: number[]; sop: string; meta_sop: string; patient: string; red: number[] | null }>;

    assert.deepEqual([ct!.rows, ct!.columns, ct!.frames, ct!.sum], [512, 512, 1, sum(ctSlice(30))]);
    assert.equal(ct!.sop, ctFile.image.sopInstanceUid);
    assert.equal(ct!.meta_sop, ctFile.image.sopInstanceUid);
    assert.equal(ct!.patient, 'DICOMSTREAM^PHANTOM');

    assert.deepEqual([palette!.rows, palette!.columns, palette!.sum], [LUT_IMAGE.rows, LUT_IMAGE.columns, sum(paletteIndices())]);
    assert.deepEqual(palette!.red, [...uint16Bytes(rainbowPalette().red).subarray(0, 8)]);

    let cineSum = 0;
    for (let f = 0; f < CINE.frames; f++) cineSum += sum(cineFrame(f));
    assert.deepEqual([cine!.frames, cine!.shape, cine!.sum], [24, [24, 256, 256], cineSum]);
  });
});
