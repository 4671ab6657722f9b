// Reads what a viewer needs from a parsed data set: the study/series/instance identity and the
// image attributes of proto ImageAttributes.
import type { DataSet, Element } from 'dicom-parser';
import type { ImageAttributes, LookupTable, FrameAttributes, PetAttributes } from '../../shared/protocol.js';
import type { SeriesFactsRecord, StudyFactsRecord } from '../../shared/index-format.js';
import { characterSetOf, decodedText } from './character-set.js';

/** What the index keeps of a study: its identity and the attributes QIDO-RS answers with. */
export type StudyFacts = StudyFactsRecord;
export type SeriesFacts = Omit<SeriesFactsRecord, 'studyInstanceUid'>;

export function text(ds: DataSet, tag: string): string {
  // dicom-parser trims trailing spaces; NULs pad some UIDs.
  return (ds.string(tag) ?? '').replace(/\0+$/, '').trim();
}

function numbers(ds: DataSet | undefined, tag: string): number[] {
  if (!ds?.elements[tag]) return [];
  const raw = ds.string(tag);
  if (raw === undefined) return [];
  return raw.split('\\').map((v) => Number.parseFloat(v)).filter((v) => Number.isFinite(v));
}

function firstNumber(ds: DataSet | undefined, tag: string): number | undefined {
  return numbers(ds, tag)[0];
}

function uint16(ds: DataSet, tag: string): number | undefined {
  const e = ds.elements[tag];
  if (!e || e.length < 2) return undefined;
  return ds.uint16(tag);
}

function integerString(ds: DataSet, tag: string): number | undefined {
  const v = Number.parseInt(text(ds, tag), 10);
  return Number.isFinite(v) ? v : undefined;
}

export function studyFacts(ds: DataSet): StudyFacts {
  const cs = characterSetOf(ds);
  return {
    studyInstanceUid: text(ds, 'x0020000d'),
    patientName: decodedText(ds, 'x00100010', 'PN', cs),
    patientId: decodedText(ds, 'x00100020', 'LO', cs),
    studyDate: text(ds, 'x00080020'),
    studyTime: text(ds, 'x00080030'),
    studyDescription: decodedText(ds, 'x00081030', 'LO', cs),
    accessionNumber: decodedText(ds, 'x00080050', 'SH', cs),
    patientBirthDate: text(ds, 'x00100030'),
    patientSex: text(ds, 'x00100040'),
    studyId: decodedText(ds, 'x00200010', 'SH', cs),
    referringPhysicianName: decodedText(ds, 'x00080090', 'PN', cs),
  };
}

export function seriesFacts(ds: DataSet): SeriesFacts {
  return {
    seriesInstanceUid: text(ds, 'x0020000e'),
    modality: text(ds, 'x00080060'),
    seriesDescription: decodedText(ds, 'x0008103e', 'LO', characterSetOf(ds)),
    seriesNumber: integerString(ds, 'x00200011') ?? 0,
    seriesDate: text(ds, 'x00080021'),
    seriesTime: text(ds, 'x00080031'),
  };
}

/** The first item's data set of a sequence element, if any. */
function firstItem(ds: DataSet | undefined, tag: string): DataSet | undefined {
  return ds?.elements[tag]?.items?.[0]?.dataSet;
}

/** Little-endian LUT data, whatever the file's byte order. */
function lutData(ds: DataSet, element: Element, bytesPerEntry: number): Uint8Array {
  const bytes = ds.byteArray.subarray(element.dataOffset, element.dataOffset + element.length);
  const out = new Uint8Array(bytes.length);
  out.set(bytes);
  const bigEndian = ds.byteArrayParser.readUint16(new Uint8Array([0, 1]), 0) === 1;
  if (bigEndian && bytesPerEntry === 2) {
    for (let i = 0; i + 1 < out.length; i += 2) { const t = out[i]!; out[i] = out[i + 1]!; out[i + 1] = t; }
  }
  return out;
}

function lookupTable(ds: DataSet | undefined, descriptorTag: string, dataTag: string, explanationTag?: string): LookupTable | null {
  if (!ds) return null;
  const d = ds.elements[descriptorTag];
  const data = ds.elements[dataTag];
  if (!d || !data || d.length < 6) return null;
  // The descriptor is US or SS; its first mapped value is signed where the LUT maps signed input.
  const entries = ds.uint16(descriptorTag, 0) ?? 0;
  const firstRaw = ds.uint16(descriptorTag, 1) ?? 0;
  const bits = ds.uint16(descriptorTag, 2) ?? 16;
  const numberOfEntries = entries === 0 ? 65536 : entries;
  const bytesPerEntry = data.length >= numberOfEntries * 2 ? 2 : 1;
  return {
    numberOfEntries,
    firstMappedValue: d.vr === 'SS' ? (firstRaw << 16) >> 16 : firstRaw,
    bitsPerEntry: bits,
    data: lutData(ds, data, bytesPerEntry),
    explanation: explanationTag ? text(ds, explanationTag) : '',
    modalityLutType: '',
    bytesPerEntry,
  };
}

function frameAttributes(item: DataSet | undefined, shared: DataSet | undefined): FrameAttributes {
  const position = firstItem(item, 'x00209113') ?? firstItem(shared, 'x00209113');
  const voi = firstItem(item, 'x00289132') ?? firstItem(shared, 'x00289132');
  const rescale = firstItem(item, 'x00289145') ?? firstItem(shared, 'x00289145');
  const slope = firstNumber(rescale, 'x00281053');
  const intercept = firstNumber(rescale, 'x00281052');
  return {
    imagePositionPatient: numbers(position, 'x00200032'),
    windowCenter: numbers(voi, 'x00281050'),
    windowWidth: numbers(voi, 'x00281051'),
    hasRescale: slope !== undefined || intercept !== undefined,
    rescaleSlope: slope ?? 1,
    rescaleIntercept: intercept ?? 0,
  };
}

/**
 * The tag of element `element` (two hex digits) in the private block that `creator` reserved in
 * `group` (PS3.5 7.8.1), or undefined when the file has no such block.
 */
function privateTag(ds: DataSet, group: string, creator: string, element: string): string | undefined {
  for (let block = 0x10; block <= 0xff; block++) {
    const reservation = `x${group}00${block.toString(16).padStart(2, '0')}`;
    if (ds.elements[reservation] && text(ds, reservation) === creator) return `x${group}${block.toString(16).padStart(2, '0')}${element}`;
  }
  return undefined;
}

function privateNumber(ds: DataSet, group: string, creator: string, element: string): number {
  const tag = privateTag(ds, group, creator, element);
  return (tag && firstNumber(ds, tag)) || 0;
}

/** What SUV scaling needs of a PT image (PS3.3 C.8.9), where the file gives it. */
function petAttributes(ds: DataSet): PetAttributes {
  const isotope = firstItem(ds, 'x00540016');
  const geTag = privateTag(ds, '0009', 'GEMS_PETD_01', '0d');
  return {
    units: text(ds, 'x00541001'),
    correctedImage: text(ds, 'x00280051') ? text(ds, 'x00280051').split('\\').map((v) => v.trim()) : [],
    decayCorrection: text(ds, 'x00541102'),
    patientWeight: firstNumber(ds, 'x00101030') ?? 0,
    patientSize: firstNumber(ds, 'x00101020') ?? 0,
    patientSex: text(ds, 'x00100040'),
    radionuclideTotalDose: firstNumber(isotope, 'x00181074') ?? 0,
    radionuclideHalfLife: firstNumber(isotope, 'x00181075') ?? 0,
    radiopharmaceuticalStartTime: isotope ? text(isotope, 'x00181072') : '',
    radiopharmaceuticalStartDateTime: isotope ? text(isotope, 'x00181078') : '',
    seriesDate: text(ds, 'x00080021'),
    seriesTime: text(ds, 'x00080031'),
    acquisitionDate: text(ds, 'x00080022'),
    acquisitionTime: text(ds, 'x00080032'),
    frameReferenceTime: firstNumber(ds, 'x00541300') ?? 0,
    actualFrameDuration: firstNumber(ds, 'x00181242') ?? 0,
    philipsSuvScaleFactor: privateNumber(ds, '7053', 'Philips PET Private Group', '00'),
    philipsActivityConcentrationScaleFactor: privateNumber(ds, '7053', 'Philips PET Private Group', '09'),
    gePostInjectionDateTime: geTag ? text(ds, geTag) : '',
  };
}

export interface ImageFacts {
  attributes: ImageAttributes;
  /** Number of Frames as written, when it was not a valid positive integer. */
  invalidNumberOfFrames?: string;
}

export function imageFacts(ds: DataSet, transferSyntaxUid: string, flags: { bigEndian: boolean; encapsulated: boolean; inflated: boolean }): ImageFacts {
  const shared = firstItem(ds, 'x52009229');
  const perFrame = ds.elements.x52009230?.items ?? [];
  const framesWritten = text(ds, 'x00280008');
  const framesValue = /^\s*\d+\s*$/.test(framesWritten) ? Number.parseInt(framesWritten, 10) : NaN;
  const numberOfFrames = framesValue > 0 ? framesValue : 1;
  // Enhanced objects keep these in functional groups; fall back to them where the top level is silent.
  const measures = firstItem(shared, 'x00289110') ?? firstItem(perFrame[0]?.dataSet, 'x00289110');
  const orientation = firstItem(shared, 'x00209116') ?? firstItem(perFrame[0]?.dataSet, 'x00209116');
  const frames = perFrame.length === numberOfFrames ? perFrame.map((item) => frameAttributes(item.dataSet, shared)) : [];
  const first: FrameAttributes | undefined = frames[0] ?? (shared ? frameAttributes(undefined, shared) : undefined);

  const slope = firstNumber(ds, 'x00281053');
  const intercept = firstNumber(ds, 'x00281052');
  const modalityLutItem = firstItem(ds, 'x00283000');
  const modalityLut = lookupTable(modalityLutItem, 'x00283002', 'x00283006', 'x00283003');
  if (modalityLut && modalityLutItem) modalityLut.modalityLutType = text(modalityLutItem, 'x00283004');
  const voiLuts = (ds.elements.x00283010?.items ?? [])
    .map((item) => lookupTable(item.dataSet, 'x00283002', 'x00283006', 'x00283003'))
    .filter((t): t is LookupTable => t !== null);
  const padding = ds.elements.x00280120;
  const pixelRepresentation = uint16(ds, 'x00280103') ?? 0;
  const bitsAllocated = uint16(ds, 'x00280100') ?? 0;
  const windowCenter = numbers(ds, 'x00281050');
  const windowWidth = numbers(ds, 'x00281051');

  const attributes: ImageAttributes = {
    sopInstanceUid: text(ds, 'x00080018'),
    sopClassUid: text(ds, 'x00080016'),
    instanceNumber: integerString(ds, 'x00200013') ?? 0,
    numberOfFrames,
    rows: uint16(ds, 'x00280010') ?? 0,
    columns: uint16(ds, 'x00280011') ?? 0,
    bitsAllocated,
    bitsStored: uint16(ds, 'x00280101') ?? bitsAllocated,
    highBit: uint16(ds, 'x00280102') ?? Math.max(0, bitsAllocated - 1),
    pixelRepresentation,
    samplesPerPixel: uint16(ds, 'x00280002') ?? 1,
    photometricInterpretation: text(ds, 'x00280004'),
    planarConfiguration: uint16(ds, 'x00280006') ?? 0,
    transferSyntaxUid,
    bigEndian: flags.bigEndian && !flags.encapsulated,
    encapsulated: flags.encapsulated,
    hasRescale: slope !== undefined || intercept !== undefined || (first?.hasRescale ?? false),
    rescaleSlope: slope ?? first?.rescaleSlope ?? 1,
    rescaleIntercept: intercept ?? first?.rescaleIntercept ?? 0,
    rescaleType: text(ds, 'x00281054'),
    windowCenter: windowCenter.length ? windowCenter : first?.windowCenter ?? [],
    windowWidth: windowWidth.length ? windowWidth : first?.windowWidth ?? [],
    windowExplanation: text(ds, 'x00281055') ? text(ds, 'x00281055').split('\\') : [],
    voiLutFunction: text(ds, 'x00281056'),
    pixelSpacing: numbers(ds, 'x00280030').length ? numbers(ds, 'x00280030') : numbers(measures, 'x00280030'),
    imagePositionPatient: numbers(ds, 'x00200032').length ? numbers(ds, 'x00200032') : first?.imagePositionPatient ?? [],
    imageOrientationPatient: numbers(ds, 'x00200037').length ? numbers(ds, 'x00200037') : numbers(orientation, 'x00200037'),
    sliceThickness: firstNumber(ds, 'x00180050') ?? firstNumber(measures, 'x00180050') ?? 0,
    frameOfReferenceUid: text(ds, 'x00200052'),
    modalityLut,
    voiLuts,
    redPalette: lookupTable(ds, 'x00281101', 'x00281201'),
    greenPalette: lookupTable(ds, 'x00281102', 'x00281202'),
    bluePalette: lookupTable(ds, 'x00281103', 'x00281203'),
    hasPixelPaddingValue: Boolean(padding && padding.length >= 2),
    pixelPaddingValue: padding && padding.length >= 2
      ? (pixelRepresentation === 1 ? ds.int16('x00280120') ?? 0 : ds.uint16('x00280120') ?? 0)
      : 0,
    lossyImageCompression: text(ds, 'x00282110') === '01',
    frames,
    frameSource: flags.inflated ? 'inflated' : 'file',
    pet: text(ds, 'x00080060') === 'PT' ? petAttributes(ds) : null,
  };
  return framesWritten && !(framesValue > 0) ? { attributes, invalidNumberOfFrames: framesWritten } : { attributes };
}
