// The DICOM JSON model (PS3.18 Annex F): attributes keyed by 8-hex-digit tag, each with its VR and
// its values. Strings and numbers as JSON strings and numbers, person names split into their
// Alphabetic / Ideographic / Phonetic groups, sequences as arrays of data sets, binary values as a
// BulkDataURI or InlineBinary. Both QIDO-RS (from the index) and WADO-RS metadata (from the files)
// write through these functions, so a value reads the same whichever route gave it.

export interface PersonName { Alphabetic?: string; Ideographic?: string; Phonetic?: string }
export type DicomJsonValue = string | number | null | PersonName | DicomJsonDataSet;

export interface DicomJsonElement {
  vr: string;
  Value?: DicomJsonValue[];
  BulkDataURI?: string;
  InlineBinary?: string;
}

export type DicomJsonDataSet = { [tag: string]: DicomJsonElement };

/** "00100010" of a tag. */
export const tagKey = (tag: number): string => tag.toString(16).toUpperCase().padStart(8, '0');

/** VRs holding one value whatever backslashes they contain (PS3.5 6.4). */
const SINGLE_VALUED = new Set(['LT', 'ST', 'UT', 'UR']);
/** VRs whose leading spaces are significant (only trailing padding is removed). */
const KEEP_LEADING = new Set(['LT', 'ST', 'UT', 'UC']);
const NUMERIC_STRING = new Set(['DS', 'IS']);

/** The values of a text VR (decoded already), padding removed, empty ones null (F.2.5). */
export function textValues(vr: string, text: string): DicomJsonValue[] {
  const parts = SINGLE_VALUED.has(vr) ? [text] : text.split('\\');
  const values = parts.map((part): DicomJsonValue => {
    const v = KEEP_LEADING.has(vr) ? part.replace(/[\0 ]+$/, '') : part.replace(/\0+$/, '').trim();
    if (v === '') return null;
    if (NUMERIC_STRING.has(vr)) {
      const n = Number(v);
      return Number.isFinite(n) ? n : v; // an invalid number stays as written rather than lost
    }
    return vr === 'PN' ? personName(v) : v;
  });
  return values.length === 1 && values[0] === null ? [] : values;
}

/** A PN value's component groups (`Wang^XiaoDong=王^小東=` -> Alphabetic and Ideographic). */
export function personName(value: string): PersonName {
  const [alphabetic, ideographic, phonetic] = value.split('=');
  const name: PersonName = {};
  if (alphabetic) name.Alphabetic = alphabetic;
  if (ideographic) name.Ideographic = ideographic;
  if (phonetic) name.Phonetic = phonetic;
  return name;
}

/** An element of a text or numeric-string VR from its decoded text: no Value when empty. */
export function textElement(vr: string, text: string): DicomJsonElement {
  const values = textValues(vr, text);
  return values.length ? { vr, Value: values } : { vr };
}

/** An element of numbers (US, IS, …). */
export function numberElement(vr: string, values: readonly number[]): DicomJsonElement {
  return values.length ? { vr, Value: [...values] } : { vr };
}

/** The data set with its keys in ascending tag order, as PS3.18 F.2 and every peer write them. */
export function sortedDataSet(ds: DicomJsonDataSet): DicomJsonDataSet {
  const out: DicomJsonDataSet = {};
  for (const key of Object.keys(ds).sort()) out[key] = ds[key]!;
  return out;
}
