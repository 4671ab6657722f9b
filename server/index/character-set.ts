// Text attributes decoded by the data set's Specific Character Set (0008,0005): UTF-8, the ISO
// 8859 family, ISO 2022 with code extensions (Japanese, Korean, Chinese), GB18030 and GBK, by
// dicom-character-set (a maintained library over TextDecoder) rather than tables of our own.
// dicom-parser's own string() maps each byte to one code point, right only for ASCII and Latin-1.
import { convertBytes } from 'dicom-character-set';
import type { DataSet } from 'dicom-parser';

/** The Specific Character Set of a data set, all its values ('' : the default repertoire). */
export function characterSetOf(ds: DataSet): string {
  return (ds.string('x00080005') ?? '').replace(/\0+$/, '').trim();
}

/** Only printable ASCII and the DICOM delimiters: the same in every character set DICOM allows. */
function plainAscii(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b >= 0x7f || (b < 0x20 && b !== 0x00 && b !== 0x09 && b !== 0x0a && b !== 0x0c && b !== 0x0d)) return false;
  }
  return true;
}

/** Latin-1, as dicom-parser's string() reads (without spreading the bytes: a hostile value may be long). */
const oneCodePointAByte = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');

/** Text bytes of a VR (PN, LO, SH, ST, LT, UT, UC) decoded by `characterSet`, padding kept. */
export function decodeText(bytes: Uint8Array, vr: string, characterSet: string): string {
  if (plainAscii(bytes)) return oneCodePointAByte(bytes);
  try {
    return convertBytes(characterSet || 'ISO_IR 6', bytes, { vr });
  } catch {
    // A character set the library does not know falls back to one code point a byte, as before.
    return oneCodePointAByte(bytes);
  }
}

/** A text value of a data set decoded by `characterSet`, trailing padding removed. */
export function decodedText(ds: DataSet, tag: string, vr: string, characterSet: string): string {
  const e = ds.elements[tag];
  if (!e || !e.length) return '';
  return decodeText(ds.byteArray.subarray(e.dataOffset, e.dataOffset + e.length), vr, characterSet).replace(/[\0 ]+$/, '').trim();
}
