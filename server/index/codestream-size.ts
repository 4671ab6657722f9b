// The image size a compressed frame's own header declares: JPEG and JPEG-LS (SOFn), JPEG 2000 and
// HTJ2K (SIZ, bare or in a JP2 box). Read from the first bytes of the first frame at index time, it
// tells a damaged encapsulation (bytes of the data set over the codestream, as when a sequence
// delimiter is embedded in a fragment) from a sound copy, without decoding anything.

export interface CodestreamSize { columns: number; rows: number }

const u16 = (b: Uint8Array, at: number) => (b[at]! << 8) | b[at + 1]!;
const u32 = (b: Uint8Array, at: number) => ((b[at]! << 24) >>> 0) + (b[at + 1]! << 16) + (b[at + 2]! << 8) + b[at + 3]!;

/** The size in the header, or undefined when the bytes are not a codestream this knows (or too short to tell). */
export function codestreamSize(bytes: Uint8Array): CodestreamSize | undefined {
  if (bytes[0] !== 0xff) return jp2Size(bytes);
  if (bytes[1] === 0x4f && bytes[2] === 0xff && bytes[3] === 0x51) return sizSize(bytes, 4);
  if (bytes[1] === 0xd8) return sofSize(bytes);
  return undefined;
}

/** SIZ: Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz (the image is Xsiz − XOsiz wide). */
function sizSize(b: Uint8Array, at: number): CodestreamSize | undefined {
  if (at + 18 > b.length) return undefined;
  return { columns: u32(b, at + 4) - u32(b, at + 12), rows: u32(b, at + 8) - u32(b, at + 16) };
}

/** A JP2 file: the codestream box's SIZ (searched for in the first bytes). */
function jp2Size(b: Uint8Array): CodestreamSize | undefined {
  if (u32(b, 4) !== 0x6a502020) return undefined; // 'jP  '
  for (let i = 8; i + 4 <= b.length; i++) if (b[i] === 0xff && b[i + 1] === 0x4f && b[i + 2] === 0xff && b[i + 3] === 0x51) return sizSize(b, i + 4);
  return undefined;
}

/** The first SOFn (or JPEG-LS SOF55) after SOI: P, Y (rows), X (columns). */
function sofSize(b: Uint8Array): CodestreamSize | undefined {
  let at = 2;
  while (at + 9 <= b.length) {
    if (b[at] !== 0xff) return undefined;
    const marker = b[at + 1]!;
    if (marker === 0xff) { at++; continue; }
    const isSof = (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) || marker === 0xf7;
    if (isSof) return { rows: u16(b, at + 5), columns: u16(b, at + 7) };
    if (marker === 0xda) return undefined; // a scan before any frame header
    at += 2 + u16(b, at + 2);
  }
  return undefined;
}
