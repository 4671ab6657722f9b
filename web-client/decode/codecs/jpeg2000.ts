// JPEG 2000 frames (1.2.840.10008.1.2.4.90 Lossless Only, …4.91) decoded with OpenJPEG, which
// also takes the HTJ2K frames OpenJPH cannot (htj2k.ts falls back to decodeWithOpenJpeg).
//
// The inverse multiple component transformation is part of JPEG 2000 decoding: a colour frame
// coded with it (YBR_RCT / YBR_ICT) comes back as RGB. Samples come back at the codestream's
// precision and signedness, which need not match the header (encoders write precision 16 for
// 12-bit data; some write signed data as unsigned): they are fitted to Bits Allocated and then
// normalised by the header's Bits Stored and Pixel Representation, as the references are.
import type { OpenJpegModule } from '@cornerstonejs/codec-openjpeg/decodewasmjs';
import { DecodeError } from '../errors.js';
import type { FrameLayout } from '../frame-layout.js';
import { normaliseBits, pixelView, type PixelArray } from '../pixels.js';
import type { CodecOutput } from '../decoders.js';
import { startCodec } from './wasm-module.js';

export interface J2kComponent { precision: number; signed: boolean; dx: number; dy: number }

/** What the main header says, read before decoding (the codec reports less, and nothing on failure). */
export interface J2kHeader {
  width: number;
  height: number;
  components: J2kComponent[];
  /** COD's multiple component transformation: decoding turns the first three components into RGB. */
  mct: boolean;
  /** Rsiz bit 14: a High-Throughput (Part 15) codestream. */
  highThroughput: boolean;
}

const SIZ = 0xff51;
const COD = 0xff52;
const SOT = 0xff90;
const SOD = 0xff93;
const JP2_SIGNATURE_BOX = 0x6a502020; // 'jP  '
const JP2_CODESTREAM_BOX = 0x6a703263; // 'jp2c'

export const corrupt = (what: string, message: string) => new DecodeError('CORRUPT_FRAME', `${what} frame: ${message}`);
const unsupported = (what: string, message: string) => new DecodeError('UNSUPPORTED_TRANSFER_SYNTAX', `${what} frame: ${message}`);
export const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Where the codestream starts: at 0, or inside a JP2 file's codestream box (DICOM forbids JP2, some encoders write it). */
function codestreamStart(bytes: Uint8Array): number {
  if (bytes[0] === 0xff && bytes[1] === 0x4f) return 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 8 || view.getUint32(4) !== JP2_SIGNATURE_BOX) return -1;
  for (let at = 0; at + 8 <= bytes.length;) {
    let length = view.getUint32(at);
    let headerBytes = 8;
    if (length === 1) {
      if (at + 16 > bytes.length) return -1;
      length = view.getUint32(at + 8) * 2 ** 32 + view.getUint32(at + 12);
      headerBytes = 16;
    } else if (length === 0) {
      length = bytes.length - at;
    }
    if (view.getUint32(at + 4) === JP2_CODESTREAM_BOX) return at + headerBytes;
    if (length < headerBytes) return -1;
    at += length;
  }
  return -1;
}

/** Reads SIZ and COD from the main header; throws CORRUPT_FRAME when there is no readable one. */
export function readJ2kHeader(bytes: Uint8Array, what: string): J2kHeader {
  const start = codestreamStart(bytes);
  if (start < 0) throw corrupt(what, 'no codestream (neither an SOC marker nor a JP2 file at its start)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (at: number, n: number) => {
    if (at + n > bytes.length) throw corrupt(what, `the main header is cut short at byte ${bytes.length - start} of the codestream`);
  };
  let at = start + 2;
  need(at, 4);
  if (view.getUint16(at) !== SIZ) throw corrupt(what, 'no SIZ marker after SOC');
  const sizLength = view.getUint16(at + 2);
  need(at + 2, sizLength);
  const count = sizLength >= 38 ? view.getUint16(at + 38) : 0;
  if (count === 0 || sizLength !== 38 + 3 * count) throw corrupt(what, `a SIZ marker of ${sizLength} bytes for ${count} components`);
  const [xSiz, ySiz, xOffset, yOffset] = [6, 10, 14, 18].map((o) => view.getUint32(at + o)) as [number, number, number, number];
  if (xSiz <= xOffset || ySiz <= yOffset) throw corrupt(what, `an empty image area (SIZ ${xSiz} × ${ySiz} from ${xOffset}, ${yOffset})`);
  const components: J2kComponent[] = [];
  for (let c = 0; c < count; c++) {
    const s = bytes[at + 40 + 3 * c]!;
    components.push({ precision: (s & 0x7f) + 1, signed: (s & 0x80) !== 0, dx: bytes[at + 41 + 3 * c]!, dy: bytes[at + 42 + 3 * c]! });
  }
  const header: J2kHeader = {
    width: xSiz - xOffset, height: ySiz - yOffset, components, mct: false,
    highThroughput: (view.getUint16(at + 4) & 0x4000) !== 0,
  };
  at += 2 + sizLength;
  // The other marker segments of the main header, up to the first tile-part.
  for (;;) {
    need(at, 4);
    const marker = view.getUint16(at);
    if (marker === SOT || marker === SOD) break;
    if (marker >>> 8 !== 0xff) throw corrupt(what, `no marker at byte ${at - start} of the main header`);
    const length = view.getUint16(at + 2);
    need(at + 2, length);
    // Lcod (2), Scod (1), then SGcod: progression order (1), layers (2), multiple component transformation (1).
    if (marker === COD && length >= 7) header.mct = bytes[at + 8] !== 0;
    at += 2 + length;
  }
  return header;
}

/** Checks the codestream against the image attributes, before spending time decoding it. */
export function checkJ2kHeader(header: J2kHeader, layout: FrameLayout, what: string): void {
  if (layout.bitsAllocated === 1) throw new DecodeError('BAD_ATTRIBUTES', `${what} cannot hold Bits Allocated 1`);
  if (header.width !== layout.columns || header.height !== layout.rows) {
    throw corrupt(what, `the codestream is ${header.width} × ${header.height} pixels, the image ${layout.columns} × ${layout.rows}`);
  }
  const { components } = header;
  if (components.length !== layout.samplesPerPixel) {
    throw corrupt(what, `the codestream has ${components.length} components, the image ${layout.samplesPerPixel} samples per pixel`);
  }
  // DICOM allows no others, and the codec builds write other counts wrongly.
  if (components.length !== 1 && components.length !== 3) throw unsupported(what, `${components.length} components are not supported (1 or 3)`);
  const first = components[0]!;
  if (components.some((c) => c.precision !== first.precision || c.signed !== first.signed)) {
    throw unsupported(what, `components of different precisions (${components.map((c) => `${c.signed ? 's' : 'u'}${c.precision}`).join(', ')}) are not supported`);
  }
  if (first.precision > 16) throw unsupported(what, `${first.precision}-bit samples are not supported (16 at most)`);
  if (components.some((c) => c.dx !== 1 || c.dy !== 1) && !chromaSubsampled(header)) {
    throw unsupported(what, `component subsampling ${components.map((c) => `${c.dx}×${c.dy}`).join(', ')} is not supported`);
  }
}

/** Y at full size and Cb, Cr halved across (4:2:2) or both ways (4:2:0): OpenJPEG upsamples it to RGB. */
function chromaSubsampled({ components: c }: J2kHeader): boolean {
  return c.length === 3 && c[0]!.dx === 1 && c[0]!.dy === 1 && c[1]!.dx === 2 && c[2]!.dx === 2
    && c[1]!.dy === c[2]!.dy && (c[1]!.dy === 1 || c[1]!.dy === 2);
}

/** True when decoding returns RGB whatever the components held (MCT, or sYCC upsampled by the codec). */
export function decodesToRgb(header: J2kHeader): boolean {
  return header.components.length === 3 && (header.mct || chromaSubsampled(header));
}

/**
 * The decoded bytes as a buffer of our own at offset 0: some codec builds return a view of their
 * memory (overwritten by the next frame), others a copy.
 */
export function ownedBytes(decoded: Uint8Array | Uint8ClampedArray, heap: Uint8Array): Uint8Array {
  const { buffer, byteOffset, byteLength } = decoded;
  if (buffer !== heap.buffer && byteOffset === 0 && byteLength === buffer.byteLength) return new Uint8Array(buffer);
  return new Uint8Array(decoded);
}

/**
 * Interleaved codec samples (1 byte each up to precision 8, else 2, little-endian, signed if the
 * codestream is) as the typed array for Bits Allocated and Pixel Representation, normalised.
 */
export function fitSamples(samples: Uint8Array, precision: number, codecSigned: boolean, layout: FrameLayout, what: string): PixelArray {
  const { bitsAllocated, bitsStored, signed } = layout;
  if (bitsAllocated === 1) throw new DecodeError('BAD_ATTRIBUTES', `${what} cannot hold Bits Allocated 1`);
  const sampleBytes = precision <= 8 ? 1 : 2;
  const count = layout.rows * layout.columns * layout.samplesPerPixel;
  if (samples.length !== count * sampleBytes) throw corrupt(what, `decoded to ${samples.length} bytes, the image needs ${count * sampleBytes}`);
  let pixels: PixelArray;
  if (sampleBytes * 8 === bitsAllocated) {
    pixels = pixelView(samples, bitsAllocated, signed);
  } else {
    // Precision 8 in 16 bits allocated, or 9..16 in 8 or 32: each value converted, then normalised.
    const { buffer, byteOffset } = samples;
    const from = sampleBytes === 1
      ? (codecSigned ? new Int8Array(buffer, byteOffset, count) : samples)
      : (codecSigned ? new Int16Array(buffer, byteOffset, count) : new Uint16Array(buffer, byteOffset, count));
    pixels = pixelView(new Uint8Array(count * (bitsAllocated / 8)), bitsAllocated, signed);
    pixels.set(from);
  }
  return normaliseBits(pixels, bitsStored, bitsAllocated, signed, true);
}

export const asOutput = (pixels: PixelArray, rgb: boolean): PixelArray | CodecOutput => (rgb ? { pixels, colourSpace: 'RGB' } : pixels);

/** OpenJPEG, loaded when first needed (htj2k.ts imports this module but needs OpenJPEG only as its fallback). */
async function openJpeg(): Promise<OpenJpegModule> {
  const { default: factory } = await import('@cornerstonejs/codec-openjpeg/decodewasmjs');
  return startCodec(factory, () => new URL('./codecs/openjpegwasm_decode.wasm', import.meta.url));
}

/** Decodes a JPEG 2000 or HTJ2K codestream with OpenJPEG; `what` names the syntax in messages. */
export async function decodeWithOpenJpeg(bytes: Uint8Array, layout: FrameLayout, what: string, known?: J2kHeader): Promise<PixelArray | CodecOutput> {
  const header = known ?? readJ2kHeader(bytes, what);
  checkJ2kHeader(header, layout, what);
  const { precision, signed } = header.components[0]!;
  // This OpenJPEG build clamps samples of 8 bits or fewer to 0..255: negative values would be lost.
  if (signed && precision <= 8) throw unsupported(what, `signed ${precision}-bit samples are not supported by the OpenJPEG build`);
  const codec = await openJpeg();
  const decoder = new codec.J2KDecoder();
  let info;
  let samples;
  try {
    decoder.getEncodedBuffer(bytes.length).set(bytes);
    decoder.decode();
    info = decoder.getFrameInfo();
    samples = ownedBytes(decoder.getDecodedBuffer(), codec.HEAPU8);
  } catch (e) {
    throw corrupt(what, `OpenJPEG failed: ${errorText(e)}`);
  } finally {
    decoder.delete();
  }
  // OpenJPEG reports failure by leaving the frame empty (its messages go to the silenced print).
  if (info.width === 0 || info.height === 0) throw corrupt(what, 'OpenJPEG could not decode the codestream');
  if (info.width !== layout.columns || info.height !== layout.rows || info.componentCount !== layout.samplesPerPixel) {
    throw corrupt(what, `OpenJPEG decoded ${info.width} × ${info.height} × ${info.componentCount} samples, the image is ${layout.columns} × ${layout.rows} × ${layout.samplesPerPixel}`);
  }
  return asOutput(fitSamples(samples, info.bitsPerSample, info.isSigned, layout, what), decodesToRgb(header));
}

export function decodeJpeg2000(bytes: Uint8Array, layout: FrameLayout): Promise<PixelArray | CodecOutput> {
  return decodeWithOpenJpeg(bytes, layout, 'JPEG 2000');
}
