// The metadata modules Cornerstone and its tools ask for, answered from the series manifest the
// client already holds (no request per image). Names and shapes as @cornerstonejs/core's
// metadata module types and its DICOM image loader's providers give them.
import type { ImageAttributes, SeriesManifest, StudySummary } from '../../shared/protocol.js';
import type { SuvFactors } from './suv.js';

/** What the provider knows of one imageId. */
export interface ImageRecord {
  instance: ImageAttributes;
  /** 1-based. */
  frameNumber: number;
  /** Its place in imageIdsForSeries' list (the stack index). */
  position: number;
  series: Omit<SeriesManifest, 'requestId'>;
  study?: StudySummary;
  /** PT images whose series has what SUV needs: their SUV factors (scalingModule). */
  suv?: SuvFactors;
}

type Module = Record<string, unknown>;

const first = (values: readonly number[]): number | undefined => (values.length ? values[0] : undefined);

/** Rescale slope and intercept as Cornerstone applies them (1 and 0 when the file has none). */
export function rescaleOf(instance: ImageAttributes): { slope: number; intercept: number } {
  return instance.hasRescale ? { slope: instance.rescaleSlope, intercept: instance.rescaleIntercept } : { slope: 1, intercept: 0 };
}

/** PixelSpacing is row spacing then column spacing (PS3.3 C.7.6.2.1.1). */
export function spacingOf(instance: ImageAttributes): { row: number | undefined; column: number | undefined } {
  return { row: instance.pixelSpacing[0], column: instance.pixelSpacing[1] };
}

/**
 * The instance as one of its frames sees it: an Enhanced multi-frame image's per-frame
 * functional groups (position, window, rescale) over the instance's own values.
 */
export function frameInstance(instance: ImageAttributes, frameNumber: number): ImageAttributes {
  const frame = instance.frames[frameNumber - 1];
  if (!frame) return instance;
  return {
    ...instance,
    imagePositionPatient: frame.imagePositionPatient.length === 3 ? frame.imagePositionPatient : instance.imagePositionPatient,
    ...(frame.windowCenter.length && frame.windowWidth.length ? { windowCenter: frame.windowCenter, windowWidth: frame.windowWidth } : {}),
    ...(frame.hasRescale ? { hasRescale: true, rescaleSlope: frame.rescaleSlope, rescaleIntercept: frame.rescaleIntercept } : {}),
  };
}

/** The module `type` of the image, or undefined when this provider has nothing to say of it. */
export function metadataModule(type: string, r: ImageRecord): Module | undefined {
  const i = r.instance;
  switch (type) {
    case 'imagePixelModule':
      return {
        samplesPerPixel: i.samplesPerPixel, photometricInterpretation: i.photometricInterpretation, rows: i.rows, columns: i.columns,
        bitsAllocated: i.bitsAllocated, bitsStored: i.bitsStored, highBit: i.highBit, pixelRepresentation: i.pixelRepresentation,
        planarConfiguration: i.planarConfiguration,
      };
    case 'imagePlaneModule': {
      const spacing = spacingOf(i);
      const orientation = i.imageOrientationPatient.length === 6 ? i.imageOrientationPatient : undefined;
      return {
        frameOfReferenceUID: i.frameOfReferenceUid || undefined,
        rows: i.rows, columns: i.columns,
        imageOrientationPatient: orientation, rowCosines: orientation?.slice(0, 3), columnCosines: orientation?.slice(3, 6),
        imagePositionPatient: i.imagePositionPatient.length === 3 ? i.imagePositionPatient : undefined,
        sliceThickness: i.sliceThickness || undefined,
        pixelSpacing: i.pixelSpacing.length === 2 ? i.pixelSpacing : undefined,
        rowPixelSpacing: spacing.row, columnPixelSpacing: spacing.column,
        usingDefaultValues: i.pixelSpacing.length !== 2,
      };
    }
    case 'generalSeriesModule':
      return {
        modality: r.series.modality, seriesInstanceUID: r.series.seriesInstanceUid, seriesNumber: r.series.seriesNumber,
        seriesDescription: r.series.seriesDescription, studyInstanceUID: r.series.studyInstanceUid,
      };
    case 'generalStudyModule':
      return r.study && {
        studyInstanceUID: r.study.studyInstanceUid, studyDate: r.study.studyDate, studyTime: r.study.studyTime,
        studyDescription: r.study.studyDescription, accessionNumber: r.study.accessionNumber,
      };
    case 'patientModule':
      return r.study && { patientName: r.study.patientName, patientId: r.study.patientId };
    case 'voiLutModule':
      return { windowCenter: [...i.windowCenter], windowWidth: [...i.windowWidth], voiLUTFunction: i.voiLutFunction || undefined };
    case 'modalityLutModule': {
      const { slope, intercept } = rescaleOf(i);
      return { rescaleSlope: slope, rescaleIntercept: intercept, rescaleType: i.rescaleType || undefined, modality: r.series.modality };
    }
    case 'sopCommonModule':
      return { sopClassUID: i.sopClassUid, sopInstanceUID: i.sopInstanceUid };
    case 'generalImageModule':
      return {
        sopInstanceUID: i.sopInstanceUid, instanceNumber: i.instanceNumber,
        lossyImageCompression: i.lossyImageCompression ? '01' : '00', frameNumber: r.frameNumber,
      };
    case 'transferSyntax':
      return { transferSyntaxUID: i.transferSyntaxUid };
    case 'multiframeModule':
      return { NumberOfFrames: i.numberOfFrames || 1, frameNumber: r.frameNumber };
    case 'calibrationModule':
      return {};
    case 'scalingModule':
      return r.suv && { ...r.suv };
    default:
      return undefined;
  }
}

/** The file's first window, else the one Cornerstone's loader gives an image without one: its whole range (utilities.windowLevel.toWindowLevel). */
export function windowOf(instance: ImageAttributes, min: number, max: number): { center: number; width: number } {
  const center = first(instance.windowCenter);
  const width = first(instance.windowWidth);
  return center !== undefined && width !== undefined ? { center, width } : { center: (min + max + 1) / 2, width: Math.abs(max - min) + 1 };
}
