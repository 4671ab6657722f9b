// Transfer syntaxes: what the bytes of a frame are, for the index (how to slice them) and for the
// client (how to decode them).

export interface TransferSyntax {
  uid: string;
  name: string;
  /** Pixel Data is a sequence of fragments holding a compressed codestream. */
  encapsulated: boolean;
  bigEndian: boolean;
  implicitVr: boolean;
  /** The data set after the file meta is raw-deflated. */
  deflated: boolean;
  lossy: boolean;
  /** The client codec that decodes its frames (web-client/decode/decoders.ts loads it); absent: none. */
  decoder?: DecoderName;
  /** The media type of its frames in DICOMweb (PS3.18 Table 8.7.3-2): application/octet-stream for native data. */
  mediaType: string;
}

/** The client's codecs, one per codestream family: the registry maps each to its lazily loaded module. */
export type DecoderName = 'rle' | 'jpeg' | 'jpeg-ls' | 'jpeg2000' | 'htj2k';

const table: TransferSyntax[] = [];
function add(uid: string, name: string, flags: Partial<Omit<TransferSyntax, 'uid' | 'name'>> = {}): void {
  table.push({ uid, name, encapsulated: false, bigEndian: false, implicitVr: false, deflated: false, lossy: false, mediaType: 'application/octet-stream', ...flags });
}
const enc = { encapsulated: true };
const lossy = { encapsulated: true, lossy: true };
const jpeg = { decoder: 'jpeg', mediaType: 'image/jpeg' } as const;
const jpegLs = { decoder: 'jpeg-ls', mediaType: 'image/jls' } as const;
const j2k = { decoder: 'jpeg2000', mediaType: 'image/jp2' } as const;
const htj2k = { decoder: 'htj2k', mediaType: 'image/jphc' } as const;
const jxl = { mediaType: 'image/jxl' } as const;
const mpeg2 = { mediaType: 'video/mpeg' } as const;
const mp4 = { mediaType: 'video/mp4' } as const;
add('1.2.840.10008.1.2', 'Implicit VR Little Endian', { implicitVr: true });
add('1.2.840.10008.1.2.1', 'Explicit VR Little Endian');
add('1.2.840.10008.1.2.1.99', 'Deflated Explicit VR Little Endian', { deflated: true });
add('1.2.840.10008.1.2.2', 'Explicit VR Big Endian', { bigEndian: true });
add('1.2.840.10008.1.2.4.50', 'JPEG Baseline (Process 1)', { ...lossy, ...jpeg });
add('1.2.840.10008.1.2.4.51', 'JPEG Extended (Process 2 & 4)', { ...lossy, ...jpeg });
add('1.2.840.10008.1.2.4.57', 'JPEG Lossless, Non-Hierarchical (Process 14)', { ...enc, ...jpeg });
add('1.2.840.10008.1.2.4.70', 'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14, SV1)', { ...enc, ...jpeg });
add('1.2.840.10008.1.2.4.80', 'JPEG-LS Lossless', { ...enc, ...jpegLs });
add('1.2.840.10008.1.2.4.81', 'JPEG-LS Near-Lossless', { ...lossy, ...jpegLs });
add('1.2.840.10008.1.2.4.90', 'JPEG 2000 (Lossless Only)', { ...enc, ...j2k });
add('1.2.840.10008.1.2.4.91', 'JPEG 2000', { ...lossy, ...j2k });
add('1.2.840.10008.1.2.4.201', 'High-Throughput JPEG 2000 (Lossless Only)', { ...enc, ...htj2k });
add('1.2.840.10008.1.2.4.202', 'High-Throughput JPEG 2000 with RPCL Options (Lossless Only)', { ...enc, ...htj2k });
add('1.2.840.10008.1.2.4.203', 'High-Throughput JPEG 2000', { ...lossy, ...htj2k });
add('1.2.840.10008.1.2.4.110', 'JPEG XL Lossless', { ...enc, ...jxl });
add('1.2.840.10008.1.2.4.111', 'JPEG XL JPEG Recompression', { ...enc, ...jxl });
add('1.2.840.10008.1.2.4.112', 'JPEG XL', { ...lossy, ...jxl });
add('1.2.840.10008.1.2.5', 'RLE Lossless', { ...enc, decoder: 'rle', mediaType: 'image/dicom-rle' });
add('1.2.840.10008.1.2.4.100', 'MPEG2 Main Profile / Main Level', { ...lossy, ...mpeg2 });
add('1.2.840.10008.1.2.4.101', 'MPEG2 Main Profile / High Level', { ...lossy, ...mpeg2 });
add('1.2.840.10008.1.2.4.102', 'MPEG-4 AVC/H.264 High Profile', { ...lossy, ...mp4 });
add('1.2.840.10008.1.2.4.103', 'MPEG-4 AVC/H.264 BD-compatible High Profile', { ...lossy, ...mp4 });
add('1.2.840.10008.1.2.4.104', 'MPEG-4 AVC/H.264 High Profile For 2D Video', { ...lossy, ...mp4 });
add('1.2.840.10008.1.2.4.105', 'MPEG-4 AVC/H.264 High Profile For 3D Video', { ...lossy, ...mp4 });
add('1.2.840.10008.1.2.4.106', 'MPEG-4 AVC/H.264 Stereo High Profile', { ...lossy, ...mp4 });
add('1.2.840.10008.1.2.4.107', 'HEVC/H.265 Main Profile', { ...lossy, ...mp4 });
add('1.2.840.10008.1.2.4.108', 'HEVC/H.265 Main 10 Profile', { ...lossy, ...mp4 });

const byUid = new Map(table.map((t) => [t.uid, t]));

/** Video syntaxes hold one stream for all frames: not sliced into frames by this server. */
export const VIDEO_TRANSFER_SYNTAXES = new Set(table.filter((t) => /MPEG|HEVC/.test(t.name)).map((t) => t.uid));

export const IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2';
export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
export const EXPLICIT_VR_BIG_ENDIAN = '1.2.840.10008.1.2.2';
export const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1.99';

export function transferSyntax(uid: string): TransferSyntax | undefined {
  return byUid.get(uid);
}

/** Every transfer syntax in the table. */
export function transferSyntaxes(): readonly TransferSyntax[] {
  return table;
}

/** Every transfer syntax the index knows how to slice into frames. */
export function indexedTransferSyntaxes(): string[] {
  return table.filter((t) => !VIDEO_TRANSFER_SYNTAXES.has(t.uid)).map((t) => t.uid);
}
