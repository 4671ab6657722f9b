// dicomstream imageIds: `dicomstream:` followed by a WADO-RS-shaped frame path, so that viewer
// code that reads study, series and instance UIDs out of such paths (OHIF's) keeps working.

export const SCHEME = 'dicomstream';

export interface FrameId {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  /** 1-based. */
  frameNumber: number;
}

const PATH = /^dicomstream:\/studies\/([^/]+)\/series\/([^/]+)\/instances\/([^/]+)\/frames\/(\d+)$/;

export function imageIdOf(f: FrameId): string {
  return `${SCHEME}:/studies/${f.studyInstanceUid}/series/${f.seriesInstanceUid}/instances/${f.sopInstanceUid}/frames/${f.frameNumber}`;
}

/** The frame an imageId names, or undefined when it is not a dicomstream imageId. */
export function parseImageId(imageId: string): FrameId | undefined {
  const m = PATH.exec(imageId);
  if (!m) return undefined;
  const frameNumber = Number(m[4]);
  return frameNumber >= 1 ? { studyInstanceUid: m[1]!, seriesInstanceUid: m[2]!, sopInstanceUid: m[3]!, frameNumber } : undefined;
}
