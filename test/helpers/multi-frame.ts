// The data set of a small monochrome multi-frame image (secondary capture), for tests that write
// their own files: native (16-bit OW) or encapsulated (8-bit OB) pixel data.
import type { DicomElement } from '../../server/sample/dicom-writer.js';

export interface MultiFrameImage {
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  frames: number;
  /** Rows and columns. */
  side: number;
  pixelData: DicomElement['value'];
  bits: 8 | 16;
}

export function multiFrameElements(image: MultiFrameImage): DicomElement[] {
  const { bits, side } = image;
  return [
    { tag: 0x00080016, vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.7' },
    { tag: 0x00080018, vr: 'UI', value: image.sopInstanceUid },
    { tag: 0x0020000d, vr: 'UI', value: image.studyInstanceUid },
    { tag: 0x0020000e, vr: 'UI', value: image.seriesInstanceUid },
    { tag: 0x00280002, vr: 'US', value: 1 },
    { tag: 0x00280004, vr: 'CS', value: 'MONOCHROME2' },
    { tag: 0x00280008, vr: 'IS', value: image.frames },
    { tag: 0x00280010, vr: 'US', value: side },
    { tag: 0x00280011, vr: 'US', value: side },
    { tag: 0x00280100, vr: 'US', value: bits },
    { tag: 0x00280101, vr: 'US', value: bits },
    { tag: 0x00280102, vr: 'US', value: bits - 1 },
    { tag: 0x00280103, vr: 'US', value: 0 },
    { tag: 0x7fe00010, vr: bits === 16 ? 'OW' : 'OB', value: image.pixelData },
  ];
}
