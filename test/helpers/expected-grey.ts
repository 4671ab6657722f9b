// An independent, deliberately plain implementation of the grey display pipeline of PS3.3
// C.11.2.1.2 (rescale, then a LINEAR / LINEAR_EXACT / SIGMOID window, MONOCHROME1 inverted), to
// check what the viewer draws. It shares no code with web-client/render/.
export interface GreySpec {
  slope: number;
  intercept: number;
  center: number;
  width: number;
  fn?: string;
  monochrome1?: boolean;
}

export function expectedGrey(stored: number, s: GreySpec): number {
  const x = stored * s.slope + s.intercept;
  let y: number;
  if (s.fn === 'SIGMOID') y = 255 / (1 + Math.exp(-4 * (x - s.center) / s.width));
  else if (s.fn === 'LINEAR_EXACT') {
    if (x <= s.center - s.width / 2) y = 0;
    else if (x > s.center + s.width / 2) y = 255;
    else y = ((x - s.center) / s.width + 0.5) * 255;
  } else if (x <= s.center - 0.5 - (s.width - 1) / 2) y = 0;
  else if (x > s.center - 0.5 + (s.width - 1) / 2) y = 255;
  else y = ((x - (s.center - 0.5)) / (s.width - 1) + 0.5) * 255;
  y = Math.min(255, Math.max(0, Math.round(y)));
  return s.monochrome1 ? 255 - y : y;
}

/** Reads little-endian samples of a reference raw decode. */
export function samples(raw: Uint8Array, bitsAllocated: number, signed: boolean): number[] {
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: number[] = [];
  const step = bitsAllocated / 8;
  for (let i = 0; i + step <= raw.length; i += step) {
    out.push(step === 1 ? (signed ? v.getInt8(i) : v.getUint8(i))
      : step === 2 ? (signed ? v.getInt16(i, true) : v.getUint16(i, true))
        : signed ? v.getInt32(i, true) : v.getUint32(i, true));
  }
  return out;
}
