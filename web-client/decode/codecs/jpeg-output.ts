// What the JPEG decoders share on the DICOM side: checking a codestream against the image's
// attributes, choosing whether colour is converted, and laying the samples out as the decoded
// frame (typed array by Bits Allocated and Pixel Representation, bits above Bits Stored normalised).
import { DecodeError } from '../errors.js';
import type { FrameLayout } from '../frame-layout.js';
import { normaliseBits, pixelView, type PixelArray } from '../pixels.js';
import type { CodecOutput } from '../decoders.js';
import { corruptJpeg, libjpegSeesYcbcr, type JpegFrameHeader, type JpegHeader } from './jpeg-stream.js';

/** The codestream's size and component count must be the image's. */
export function checkFrame(frame: JpegFrameHeader, layout: FrameLayout, label: string): void {
  if (frame.columns !== layout.columns || frame.rows !== layout.rows) {
    throw corruptJpeg(label, `the codestream is ${frame.columns} × ${frame.rows}, the image ${layout.columns} × ${layout.rows}`);
  }
  if (frame.components.length !== layout.samplesPerPixel) {
    throw corruptJpeg(label, `the codestream has ${frame.components.length} components, the image ${layout.samplesPerPixel} samples per pixel`);
  }
  if (layout.bitsAllocated === 1) throw new DecodeError('BAD_ATTRIBUTES', `${label}: JPEG cannot hold Bits Allocated 1`);
}

/** How a lossy frame's colour is decoded. */
export interface ColourChoice {
  /** Convert YCbCr to RGB (libjpeg's integer tables, after its upsampling). */
  convert: boolean;
  /** The samples come out as RGB although the instance says YBR: the decoded frame's colourSpace. */
  colourSpace?: 'RGB';
}

/**
 * The colour rule of the references: with a YBR photometric interpretation (YBR_FULL,
 * YBR_FULL_422, …) a lossy JPEG is decoded as libjpeg decodes it by default, i.e. converted to
 * RGB unless the stream itself says it holds RGB; with any other (RGB above all) the components
 * come out as stored, even when the stream looks like YCbCr (SC_jpeg_no_color_transform.dcm,
 * SC_rgb_jpeg_lossy_gdcm.dcm).
 *
 * When the header gives no Photometric Interpretation (an instance described by hand), a YBR
 * header is inferred: 4:2:2, or a stream that says YCbCr explicitly (JFIF, or an Adobe marker
 * with transform 1). Streams that only look like YCbCr by libjpeg's guess from the component ids
 * are taken as RGB headers.
 */
export function chooseColour(header: JpegHeader, layout: FrameLayout): ColourChoice {
  if (header.frame.components.length !== 3) return { convert: false };
  const photometric = layout.photometricInterpretation;
  const ybr = photometric // '' (absent) is as unknown as undefined
    ? photometric.startsWith('YBR')
    : layout.subsampled422 || header.jfif || header.adobeTransform === 1;
  return ybr ? { convert: libjpegSeesYcbcr(header), colourSpace: 'RGB' } : { convert: false };
}

/**
 * The decoded samples (interleaved, one per array element) as the frame's typed array, with the
 * bits above Bits Stored normalised. `samples` is the decoder's own: it may be returned as is.
 */
export function framePixels(samples: Uint8Array | Uint16Array, layout: FrameLayout, label: string): PixelArray {
  const { bitsAllocated, bitsStored, signed } = layout;
  const expected = layout.rows * layout.columns * layout.samplesPerPixel;
  if (samples.length !== expected) throw corruptJpeg(label, `decoded to ${samples.length} samples, the image has ${expected}`);
  if (bitsAllocated === 1) throw new DecodeError('BAD_ATTRIBUTES', `${label}: JPEG cannot hold Bits Allocated 1`);
  let pixels: PixelArray;
  if (bitsAllocated === 8 && !signed && samples instanceof Uint8Array) {
    pixels = samples;
  } else if (bitsAllocated === 16 && !signed && samples instanceof Uint16Array) {
    pixels = samples;
  } else {
    // Typed-array conversion wraps: a 16-bit pattern 0xFFFB lands in an Int16Array as -5.
    pixels = pixelView(new Uint8Array(expected * (bitsAllocated / 8)), bitsAllocated, signed);
    pixels.set(samples);
  }
  return normaliseBits(pixels, bitsStored, bitsAllocated, signed, true);
}

export function codecOutput(pixels: PixelArray, colour: ColourChoice): CodecOutput {
  return colour.colourSpace ? { pixels, colourSpace: colour.colourSpace } : { pixels };
}
