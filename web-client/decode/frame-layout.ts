// What a decoder needs to know about a frame, checked once: the instance's Image Pixel attributes
// with DICOM's defaults filled in, and how its transfer syntax stores the frame's bytes.
import type { ImageAttributes } from '../../shared/protocol.js';
import { transferSyntax } from '../../shared/transfer-syntax.js';
import { DecodeError } from './errors.js';

/**
 * The instance attributes decoding uses. `bigEndian` and `encapsulated` may be left out (an
 * instance described by hand, or by an older server): they then follow the transfer syntax.
 */
export type DecodeInstance = Pick<
  ImageAttributes,
  'rows' | 'columns' | 'bitsAllocated' | 'bitsStored' | 'highBit' | 'pixelRepresentation' | 'samplesPerPixel'
  | 'photometricInterpretation' | 'planarConfiguration' | 'transferSyntaxUid'
> & Partial<Pick<ImageAttributes, 'bigEndian' | 'encapsulated'>>;

/** How the frame's bytes are stored. */
export interface FrameSyntax {
  uid: string;
  /** The syntax's name for messages, or a stand-in when the UID is not in the table. */
  name: string;
  /** The frame is a compressed codestream; undefined when neither the instance nor the table says. */
  encapsulated: boolean | undefined;
  /** Native samples of 16 or 32 bits are big-endian. */
  bigEndian: boolean;
}

export function frameSyntax(instance: DecodeInstance): FrameSyntax {
  const uid = instance.transferSyntaxUid ?? '';
  const known = transferSyntax(uid);
  return {
    uid,
    name: known?.name ?? (uid ? 'an unknown transfer syntax' : 'no transfer syntax'),
    // Deflated syntaxes are in the table as native: the server sends their frames inflated.
    encapsulated: instance.encapsulated ?? known?.encapsulated,
    bigEndian: instance.bigEndian ?? known?.bigEndian ?? false,
  };
}

/** The checked attributes of one frame. */
export interface FrameLayout {
  rows: number;
  columns: number;
  bitsAllocated: 1 | 8 | 16 | 32;
  /** 1..bitsAllocated (an absent Bits Stored means all of them). */
  bitsStored: number;
  signed: boolean;
  samplesPerPixel: number;
  /** Planar Configuration 1 with more than one sample: R plane, G plane, B plane. */
  planar: boolean;
  /** YBR_FULL_422 / YBR_PARTIAL_422: native data holds two samples a pixel (Y1 Y2 Cb Cr per pair). */
  subsampled422: boolean;
  bigEndian: boolean;
  /** As the header says; a colour codec follows it (a JPEG stream under an RGB header is not converted). */
  photometricInterpretation: string;
}

const bad = (message: string) => new DecodeError('BAD_ATTRIBUTES', message);
const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n > 0;

/**
 * Checks the attributes and fills in the defaults. 0 is what the wire protocol sends for an
 * absent value, so 0 Bits Stored / Samples per Pixel mean "not given", not a real 0.
 */
export function frameLayout(instance: DecodeInstance, syntax: FrameSyntax): FrameLayout {
  const { rows, columns } = instance;
  if (!isCount(rows) || !isCount(columns)) throw bad(`Rows × Columns ${rows} × ${columns} is not an image size`);
  const bitsAllocated = instance.bitsAllocated;
  if (bitsAllocated !== 1 && bitsAllocated !== 8 && bitsAllocated !== 16 && bitsAllocated !== 32) {
    throw bad(`Bits Allocated ${bitsAllocated} is not supported (1, 8, 16 or 32)`);
  }
  const bitsStored = instance.bitsStored || bitsAllocated;
  if (!isCount(bitsStored) || bitsStored > bitsAllocated) throw bad(`Bits Stored ${bitsStored} does not fit in Bits Allocated ${bitsAllocated}`);
  // High Bit is taken to be Bits Stored - 1, as the standard now requires and the references
  // assume; a retired layout with the stored bits elsewhere is not re-aligned.
  const pixelRepresentation = instance.pixelRepresentation ?? 0;
  if (pixelRepresentation !== 0 && pixelRepresentation !== 1) throw bad(`Pixel Representation ${pixelRepresentation} is not 0 or 1`);
  const samplesPerPixel = instance.samplesPerPixel || 1;
  if (!isCount(samplesPerPixel)) throw bad(`Samples per Pixel ${samplesPerPixel} is not a count`);
  const planarConfiguration = instance.planarConfiguration ?? 0;
  if (planarConfiguration !== 0 && planarConfiguration !== 1) throw bad(`Planar Configuration ${planarConfiguration} is not 0 or 1`);
  const subsampled422 = /_422$/.test(instance.photometricInterpretation ?? '');
  return {
    rows, columns, bitsAllocated, bitsStored,
    // Pixel Representation has no meaning for packed bits: they stay unsigned bytes.
    signed: pixelRepresentation === 1 && bitsAllocated !== 1,
    samplesPerPixel,
    planar: planarConfiguration === 1 && samplesPerPixel > 1 && !subsampled422,
    subsampled422,
    bigEndian: syntax.bigEndian,
    photometricInterpretation: instance.photometricInterpretation ?? '',
  };
}
