// JPEG Lossless (Process 14) frames, for both syntaxes: 1.2.840.10008.1.2.4.57 (any selection
// value) and 1.2.840.10008.1.2.4.70 (selection value 1). A decoder of our own (T.81 Annex H,
// Huffman-coded): 2..16-bit precision, predictors 1..7, point transform, restart intervals, any
// number of components. No colour conversion ever happens: the components come out as stored.
//
// jpeg-lossless-decoder-js was tried first: on dcmtk-made streams it ignores the
// point transform, rounds predictor 7 wrongly on wrap-around, mishandles some 16-bit edge values
// and 12/16-bit colour, and restarts colour scans without resetting the prediction.
import type { FrameLayout } from '../frame-layout.js';
import type { PixelArray } from '../pixels.js';
import { checkFrame, framePixels } from './jpeg-output.js';
import {
  BitReader, JpegReader, SOF3, corruptJpeg, processName, type JpegFrameHeader, type JpegHeader, type ScanHeader,
} from './jpeg-stream.js';

/** A lossless Huffman frame (SOF3), whatever syntax it came under (jpeg.ts decides). */
export function decodeLosslessFrame(bytes: Uint8Array, layout: FrameLayout, header: JpegHeader, label: string): PixelArray {
  checkFrame(header.frame, layout, label);
  return framePixels(decodeLossless(bytes, label).samples, layout, label);
}

export interface LosslessImage {
  frame: JpegFrameHeader;
  /** Interleaved samples, the point transform undone: 8-bit precision or less in bytes, else 16-bit words. */
  samples: Uint8Array | Uint16Array;
}

/** Decodes a lossless Huffman codestream (SOF3). */
export function decodeLossless(bytes: Uint8Array, label: string): LosslessImage {
  const reader = new JpegReader(bytes, label);
  let frame: JpegFrameHeader | undefined;
  let planes: Uint16Array[] | undefined;
  let pointTransform = 0;
  for (let scan = reader.nextScan(); scan; scan = reader.nextScan()) {
    if (!frame) {
      frame = reader.frame!;
      if (frame.marker !== SOF3) throw corruptJpeg(label, `${processName(frame.marker)} is not the lossless Huffman process`);
      if (frame.precision < 2 || frame.precision > 16) throw corruptJpeg(label, `sample precision ${frame.precision} (lossless has 2..16)`);
      if (frame.rows === 0 || frame.columns === 0) throw corruptJpeg(label, `frame size ${frame.columns} × ${frame.rows} (a DNL marker is not supported)`);
      const { h, v } = frame.components[0]!;
      if (frame.components.some((c) => c.h !== h || c.v !== v)) throw corruptJpeg(label, 'subsampled components are not supported in lossless frames');
      const size = frame.rows * frame.columns;
      planes = frame.components.map(() => new Uint16Array(size));
    }
    if (scan.components.length > 1 && frame.components.some((c) => c.h !== 1 || c.v !== 1)) {
      throw corruptJpeg(label, 'an interleaved scan of components with sampling factors above 1 is not supported');
    }
    pointTransform = scan.al;
    decodeScan(reader, scan, frame, planes!, label);
  }
  if (!frame || !planes) throw corruptJpeg(label, reader.frame ? 'no scan (SOS)' : 'no frame header (SOFn)');
  // Undo the point transform; the samples are the precision's width (as libjpeg's JSAMPLE).
  const n = planes.length;
  const size = frame.rows * frame.columns;
  const samples = frame.precision <= 8 ? new Uint8Array(size * n) : new Uint16Array(size * n);
  for (let c = 0; c < n; c++) {
    const plane = planes[c]!;
    for (let i = 0, o = c; i < size; i++, o += n) samples[o] = plane[i]! << pointTransform;
  }
  return { frame, samples };
}

/**
 * One scan: for each sample the Huffman-coded difference from a prediction (H.1.2): the first
 * sample of the image and of each restart interval from 2^(P-Pt-1), the rest of that line from the
 * left neighbour, the first sample of other lines from the one above, all others by the
 * selection value's predictor of left (a), above (b) and above-left (c). Arithmetic is modulo 2^16.
 */
function decodeScan(reader: JpegReader, scan: ScanHeader, frame: JpegFrameHeader, planes: Uint16Array[], label: string): void {
  const selection = scan.ss;
  if (selection < 1 || selection > 7) throw corruptJpeg(label, `predictor selection value ${selection} (1..7 allowed)`);
  const pt = scan.al;
  if (pt >= frame.precision) throw corruptJpeg(label, `point transform ${pt} for precision ${frame.precision}`);
  const initial = 1 << (frame.precision - pt - 1);
  const components = scan.components.map(({ index, dcTable }) => {
    const table = reader.dcTables[dcTable];
    if (!table) throw corruptJpeg(label, `scan uses Huffman table ${dcTable}, which is not defined`);
    return { plane: planes[index]!, table };
  });
  const bits = new BitReader(reader.bytes, scan.dataStart);
  const width = frame.columns;
  const size = frame.rows * width;
  const restartInterval = reader.restartInterval;
  // Where the current "first line" starts: the image's first sample, then each restart's.
  let firstLineStart = 0;
  for (let i = 0; i < size; i++) {
    if (restartInterval && i > 0 && i % restartInterval === 0) {
      bits.restart();
      firstLineStart = i;
    }
    const x = i % width;
    const firstLine = i - x <= firstLineStart; // on the line where the first line started
    for (const { plane, table } of components) {
      let prediction: number;
      if (i === firstLineStart) prediction = initial;
      else if (firstLine) prediction = plane[i - 1]!;
      else if (x === 0) prediction = plane[i - width]!;
      else {
        const a = plane[i - 1]!;
        const b = plane[i - width]!;
        const c = plane[i - width - 1]!;
        switch (selection) {
          case 1: prediction = a; break;
          case 2: prediction = b; break;
          case 3: prediction = c; break;
          case 4: prediction = a + b - c; break;
          case 5: prediction = a + ((b - c) >> 1); break;
          case 6: prediction = b + ((a - c) >> 1); break;
          default: prediction = (a + b) >> 1; break;
        }
      }
      const category = bits.decode(table);
      // Category 16 has no extra bits: the difference is 32768.
      const difference = category === 16 ? 32768 : category > 16 ? 0 : bits.receiveExtend(category);
      plane[i] = (prediction + difference) & 0xffff;
    }
  }
  reader.pos = bits.pos;
  reader.skipToMarker();
}
