// The built-in sample served when no folder is given: written once, on first run, into a folder
// that then holds it for good. Two studies: the CT head phantom (newest, so listed first; its CT
// series is series 1, the one the demo opens) with a cine multi-frame and an RGB test card, and
// "DICOMSTREAM^LUTS" with one image per renderer path (palette colour, Modality LUT, VOI LUT).
import { CodedError } from '../../shared/coded-error.js';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { JPEG_2000_LOSSLESS, JPEG_LS_LOSSLESS, jpeg2000Encoder, jpegLsEncoder } from './compress.js';
import { uidFromName, uint16Bytes, writeDicom, type DicomElement, type VR } from './dicom-writer.js';
import {
  CINE, CT, CT_ORIGIN, LUT_IMAGE, RGB, cineFrame, ctSlice, ctSliceZ, lutFromCurve, lutTestImage, paletteIndices,
  rainbowPalette, rgbTestPattern,
} from './phantom.js';
import { processAlive } from '../process-alive.js';

/** Bump when the sample's content changes, so folders holding an older one are rewritten. */
export const SAMPLE_VERSION = 2;
const MARKER = '.complete';
const PARTIAL = '.partial-';

export const SOP_CLASS = {
  ct: '1.2.840.10008.5.1.4.1.1.2',
  secondaryCapture: '1.2.840.10008.5.1.4.1.1.7',
  multiFrameGrayscaleWord: '1.2.840.10008.5.1.4.1.1.7.3',
} as const;

export interface SampleResult {
  dir: string;
  /** Whether this call wrote the sample (false: it was already there). */
  created: boolean;
  /** DICOM files in the sample. */
  files: number;
}

type Value = DicomElement['value'];
const el = (tag: number, vr: VR, value: Value): DicomElement => ({ tag, vr, value });

interface Study {
  key: string;
  patientName: string;
  patientId: string;
  date: string;
  time: string;
  description: string;
  accession: string;
}

const CT_STUDY: Study = {
  key: 'ct-study', patientName: 'DICOMSTREAM^PHANTOM', patientId: 'DS-PHANTOM-001',
  date: '20240611', time: '101500', description: 'Head phantom (synthetic)', accession: 'DS0001',
};
const LUT_STUDY: Study = {
  key: 'lut-study', patientName: 'DICOMSTREAM^LUTS', patientId: 'DS-LUTS-001',
  date: '20230110', time: '090000', description: 'Renderer tests: palette, Modality LUT, VOI LUT', accession: 'DS0002',
};

interface Series { key: string; number: number; modality: string; description: string }

/** Patient, study, series, equipment and SOP common attributes, shared by every file. */
function commonElements(study: Study, series: Series, sopClassUid: string, instanceKey: string, instanceNumber: number): DicomElement[] {
  return [
    el(0x00080016, 'UI', sopClassUid),
    el(0x00080018, 'UI', uidFromName(`${study.key}/${series.key}/${instanceKey}`)),
    el(0x00080020, 'DA', study.date), // Study Date
    el(0x00080023, 'DA', study.date), // Content Date
    el(0x00080030, 'TM', study.time), // Study Time
    el(0x00080033, 'TM', study.time), // Content Time
    el(0x00080050, 'SH', study.accession),
    el(0x00080060, 'CS', series.modality),
    el(0x00080070, 'LO', 'dicomstream'), // Manufacturer
    el(0x00080090, 'PN', ''), // Referring Physician's Name (type 2)
    el(0x00081030, 'LO', study.description),
    el(0x0008103e, 'LO', series.description),
    el(0x00081090, 'LO', 'synthetic sample'), // Manufacturer's Model Name
    el(0x00100010, 'PN', study.patientName),
    el(0x00100020, 'LO', study.patientId),
    el(0x00100030, 'DA', ''), // Patient's Birth Date (type 2)
    el(0x00100040, 'CS', 'O'), // Patient's Sex
    el(0x0020000d, 'UI', uidFromName(study.key)),
    el(0x0020000e, 'UI', uidFromName(`${study.key}/${series.key}`)),
    el(0x00200010, 'SH', '1'), // Study ID
    el(0x00200011, 'IS', series.number),
    el(0x00200013, 'IS', instanceNumber),
  ];
}

/** Image Pixel module for unsigned greyscale or RGB data. */
function pixelModule(rows: number, columns: number, bits: { allocated: number; stored: number }, photometric: string, samples = 1): DicomElement[] {
  return [
    el(0x00280002, 'US', samples),
    el(0x00280004, 'CS', photometric),
    ...(samples > 1 ? [el(0x00280006, 'US', 0)] : []), // Planar Configuration: interleaved
    el(0x00280010, 'US', rows),
    el(0x00280011, 'US', columns),
    el(0x00280100, 'US', bits.allocated),
    el(0x00280101, 'US', bits.stored),
    el(0x00280102, 'US', bits.stored - 1), // High Bit
    el(0x00280103, 'US', 0), // Pixel Representation: unsigned
  ];
}

const pixelData = (bytes: Uint8Array, vr: 'OB' | 'OW'): DicomElement => el(0x7fe00010, vr, bytes);
const conversionType = (type: string): DicomElement => el(0x00080064, 'CS', type); // SC Equipment, type 1

const CT_SERIES: Series = { key: 'ct-axial', number: 1, modality: 'CT', description: 'Axial 1.25 mm' };

/**
 * The same phantom, compressed losslessly: every `step`-th slice of the CT, in its own series, so
 * a fresh machine exercises the client's codecs too (the files are new instances, not copies).
 */
export const COMPRESSED_CT = [
  { series: { key: 'ct-jpegls', number: 4, modality: 'CT', description: 'Axial 5 mm, JPEG-LS lossless' }, step: 4, transferSyntaxUid: JPEG_LS_LOSSLESS, folder: 'ct-jpegls' },
  { series: { key: 'ct-j2k', number: 5, modality: 'CT', description: 'Axial 7.5 mm, JPEG 2000 lossless' }, step: 6, transferSyntaxUid: JPEG_2000_LOSSLESS, folder: 'ct-j2k' },
] as const;

function ctElements(k: number, pixels: Uint16Array, encoded?: { series: Series; frame: Uint8Array }): DicomElement[] {
  const z = ctSliceZ(k);
  const series = encoded?.series ?? CT_SERIES;
  return [
    ...commonElements(CT_STUDY, series, SOP_CLASS.ct, encoded ? `${series.key}/slice-${k}` : `slice-${k}`, k + 1),
    ...(encoded ? [el(0x00282110, 'CS', '00')] : []), // Lossy Image Compression: never
    el(0x00080008, 'CS', 'ORIGINAL\\PRIMARY\\AXIAL'), // Image Type
    el(0x00180050, 'DS', CT.sliceThickness),
    el(0x00180060, 'DS', 120), // KVP
    el(0x00185100, 'CS', 'HFS'), // Patient Position
    el(0x00200012, 'IS', 1), // Acquisition Number
    el(0x00200032, 'DS', [CT_ORIGIN, CT_ORIGIN, z]), // Image Position (Patient)
    el(0x00200037, 'DS', [1, 0, 0, 0, 1, 0]), // Image Orientation (Patient)
    el(0x00200052, 'UI', uidFromName(`${CT_STUDY.key}/frame-of-reference`)),
    el(0x00201040, 'LO', ''), // Position Reference Indicator (type 2)
    el(0x00201041, 'DS', z), // Slice Location
    ...pixelModule(CT.rows, CT.columns, { allocated: 16, stored: 12 }, 'MONOCHROME2'),
    el(0x00280030, 'DS', [CT.pixelSpacing, CT.pixelSpacing]),
    el(0x00281050, 'DS', [40, 400]), // Window Center: soft tissue, bone
    el(0x00281051, 'DS', [400, 1800]), // Window Width
    el(0x00281052, 'DS', CT.rescaleIntercept),
    el(0x00281053, 'DS', 1),
    el(0x00281054, 'LO', 'HU'),
    el(0x00281055, 'LO', 'SOFT TISSUE\\BONE'), // Window Center & Width Explanation
    encoded ? el(0x7fe00010, 'OB', { frames: [encoded.frame] }) : pixelData(uint16Bytes(pixels), 'OW'),
  ];
}

function cineElements(): DicomElement[] {
  const series: Series = { key: 'cine', number: 2, modality: 'MR', description: 'Cine, multi-frame (synthetic)' };
  const framePixels = CINE.rows * CINE.columns;
  const all = new Uint16Array(framePixels * CINE.frames);
  for (let f = 0; f < CINE.frames; f++) cineFrame(f, all.subarray(f * framePixels, (f + 1) * framePixels));
  return [
    ...commonElements(CT_STUDY, series, SOP_CLASS.multiFrameGrayscaleWord, 'cine-1', 1),
    conversionType('SYN'),
    el(0x00080008, 'CS', 'DERIVED\\SECONDARY'),
    el(0x00181063, 'DS', 40), // Frame Time, ms
    el(0x00280008, 'IS', CINE.frames),
    el(0x00280009, 'AT', 0x00181063), // Frame Increment Pointer → Frame Time
    ...pixelModule(CINE.rows, CINE.columns, { allocated: 16, stored: CINE.bitsStored }, 'MONOCHROME2'),
    el(0x00281050, 'DS', 800),
    el(0x00281051, 'DS', 1600),
    el(0x00281052, 'DS', 0),
    el(0x00281053, 'DS', 1),
    el(0x00281054, 'LO', 'US'), // unspecified units
    pixelData(uint16Bytes(all), 'OW'),
  ];
}

function rgbElements(): DicomElement[] {
  const series: Series = { key: 'rgb', number: 3, modality: 'OT', description: 'RGB test card' };
  return [
    ...commonElements(CT_STUDY, series, SOP_CLASS.secondaryCapture, 'rgb-1', 1),
    conversionType('WSD'),
    ...pixelModule(RGB.rows, RGB.columns, { allocated: 8, stored: 8 }, 'RGB', 3),
    pixelData(rgbTestPattern(), 'OB'),
  ];
}

function paletteElements(): DicomElement[] {
  const series: Series = { key: 'palette', number: 1, modality: 'OT', description: 'Palette colour (rainbow)' };
  const { red, green, blue } = rainbowPalette();
  const descriptor = [256, 0, 16]; // entries, first mapped value, bits per entry
  return [
    ...commonElements(LUT_STUDY, series, SOP_CLASS.secondaryCapture, 'palette-1', 1),
    conversionType('SYN'),
    ...pixelModule(LUT_IMAGE.rows, LUT_IMAGE.columns, { allocated: 8, stored: 8 }, 'PALETTE COLOR'),
    el(0x00281101, 'US', descriptor),
    el(0x00281102, 'US', descriptor),
    el(0x00281103, 'US', descriptor),
    el(0x00281201, 'OW', uint16Bytes(red)),
    el(0x00281202, 'OW', uint16Bytes(green)),
    el(0x00281203, 'OW', uint16Bytes(blue)),
    pixelData(paletteIndices(), 'OB'),
  ];
}

/** A LUT item: descriptor 4096\0\16 (the 12-bit input range, 16-bit output), explanation, data. */
function lutItem(explanation: string, curve: (x: number) => number, extra: DicomElement[] = []): DicomElement[] {
  return [
    el(0x00283002, 'US', [4096, 0, 16]),
    el(0x00283003, 'LO', explanation),
    el(0x00283006, 'OW', uint16Bytes(lutFromCurve(curve))),
    ...extra,
  ];
}

function modalityLutElements(): DicomElement[] {
  const series: Series = { key: 'modality-lut', number: 2, modality: 'OT', description: 'Modality LUT (square root)' };
  return [
    ...commonElements(LUT_STUDY, series, SOP_CLASS.secondaryCapture, 'modality-lut-1', 1),
    conversionType('SYN'),
    ...pixelModule(LUT_IMAGE.rows, LUT_IMAGE.columns, { allocated: 16, stored: 12 }, 'MONOCHROME2'),
    // No Rescale Slope/Intercept: the Modality LUT replaces them. The window is in its output units.
    el(0x00283000, 'SQ', [lutItem('SQUARE ROOT', Math.sqrt, [el(0x00283004, 'LO', 'US')])]),
    el(0x00281050, 'DS', 32768),
    el(0x00281051, 'DS', 65536),
    pixelData(uint16Bytes(lutTestImage()), 'OW'),
  ];
}

function voiLutElements(): DicomElement[] {
  const series: Series = { key: 'voi-lut', number: 3, modality: 'OT', description: 'VOI LUT (sigmoid, gamma)' };
  return [
    ...commonElements(LUT_STUDY, series, SOP_CLASS.secondaryCapture, 'voi-lut-1', 1),
    conversionType('SYN'),
    ...pixelModule(LUT_IMAGE.rows, LUT_IMAGE.columns, { allocated: 16, stored: 12 }, 'MONOCHROME2'),
    el(0x00283010, 'SQ', [
      lutItem('SIGMOID', (x) => 1 / (1 + Math.exp(-12 * (x - 0.5)))),
      lutItem('GAMMA 2.2', (x) => x ** (1 / 2.2)),
    ]),
    pixelData(uint16Bytes(lutTestImage()), 'OW'),
  ];
}

/** Writes every file of the sample into `dir` (which exists and is empty); returns the file count. */
async function writeSample(dir: string): Promise<number> {
  await Promise.all(['ct', 'cine', 'rgb', 'luts', ...COMPRESSED_CT.map((c) => c.folder)].map((d) => mkdir(join(dir, d))));
  const encoders = await Promise.all([jpegLsEncoder(), jpeg2000Encoder()]);
  let files = 0;
  let failure: unknown;
  const pending = new Set<Promise<void>>();
  const put = async (path: string, elements: DicomElement[], transferSyntaxUid?: string) => {
    // A few writes in flight overlap disk and computing; more would only hold memory.
    while (pending.size >= 4) await Promise.race(pending);
    if (failure) throw failure;
    // Settles without rejecting, so a failed write is never an unhandled rejection; it is rethrown here.
    const p: Promise<void> = writeFile(join(dir, path), writeDicom(elements, transferSyntaxUid))
      .catch((e: unknown) => { failure ??= e; })
      .finally(() => pending.delete(p));
    pending.add(p);
    files++;
  };
  const pixels = new Uint16Array(CT.rows * CT.columns);
  const scratch = new Float32Array(CT.rows * CT.columns);
  for (let k = 0; k < CT.slices; k++) {
    // writeDicom copies the pixels, so the buffers can be reused for the next slice at once.
    const name = `slice-${String(k + 1).padStart(3, '0')}.dcm`;
    await put(join('ct', name), ctElements(k, ctSlice(k, pixels, scratch)));
    for (const [i, c] of COMPRESSED_CT.entries()) {
      if (k % c.step !== 0) continue;
      const frame = encoders[i]!({ pixels, rows: CT.rows, columns: CT.columns });
      await put(join(c.folder, name), ctElements(k, pixels, { series: c.series, frame }), c.transferSyntaxUid);
    }
  }
  await put(join('cine', 'cine.dcm'), cineElements());
  await put(join('rgb', 'test-card.dcm'), rgbElements());
  await put(join('luts', 'palette.dcm'), paletteElements());
  await put(join('luts', 'modality-lut.dcm'), modalityLutElements());
  await put(join('luts', 'voi-lut.dcm'), voiLutElements());
  await Promise.all(pending);
  if (failure) throw failure;
  return files;
}

interface Marker { version: number; files: number }

async function readMarker(dir: string): Promise<Marker | undefined> {
  try {
    const m = JSON.parse(await readFile(join(dir, MARKER), 'utf8')) as Partial<Marker>;
    return typeof m.version === 'number' && typeof m.files === 'number' ? { version: m.version, files: m.files } : undefined;
  } catch {
    return undefined;
  }
}

/** Removes temp folders of runs that died before renaming theirs; a live run's folder is left alone. */
async function removeAbandoned(dir: string): Promise<void> {
  const prefix = basename(dir) + PARTIAL;
  const siblings = await readdir(dirname(dir)).catch((): string[] => []);
  await Promise.all(siblings.filter((name) => name.startsWith(prefix)).map(async (name) => {
    const pid = Number.parseInt(name.slice(prefix.length), 10);
    if (!Number.isInteger(pid) || pid === process.pid || !processAlive(pid)) {
      await rm(join(dirname(dir), name), { recursive: true, force: true });
    }
  }));
}

/**
 * Makes sure `dir` holds the built-in sample, writing it if `dir/.complete` is missing or from an
 * older version. The files are written into a temp sibling folder that is renamed to `dir` only
 * once complete, so an interrupted run never leaves a half sample behind. `dir` belongs to the
 * sample: an older sample there is replaced, but a non-empty folder that is not a sample is an error.
 */
export async function ensureSample(dir: string): Promise<SampleResult> {
  const existing = await readMarker(dir);
  if (existing?.version === SAMPLE_VERSION) return { dir, created: false, files: existing.files };

  const entries = await readdir(dir).catch((): string[] => []);
  if (!existing && entries.length > 0) {
    throw new CodedError('SAMPLE_DIR_NOT_EMPTY', `${dir} is not empty and holds no dicomstream sample: not replacing it`);
  }
  await mkdir(dirname(dir), { recursive: true });
  await removeAbandoned(dir);
  const temp = `${dir}${PARTIAL}${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await mkdir(temp);
    const files = await writeSample(temp);
    const marker: Marker = { version: SAMPLE_VERSION, files };
    await writeFile(join(temp, MARKER), JSON.stringify(marker) + '\n');
    await rm(dir, { recursive: true, force: true });
    try {
      await rename(temp, dir);
    } catch (e) {
      // Another process finished first: use its sample.
      const theirs = await readMarker(dir);
      if (theirs?.version === SAMPLE_VERSION) return { dir, created: false, files: theirs.files };
      throw e;
    }
    return { dir, created: true, files };
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}
