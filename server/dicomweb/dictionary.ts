// The DICOM data dictionary (dcmjs's, generated from the standard's PS3.6), loaded on first use:
// the VR of an element read in implicit VR, and keyword <-> tag for `includefield` and search
// parameters. Only the DICOMweb routes need it; the stream never loads it.

interface DictionaryEntry { tag: string; vr: string; name: string; vm: string; version: string }

export interface Dictionary {
  /** The VR the standard gives a tag (one VR where it allows several), or undefined for an unknown tag. */
  vr(tag: number): string | undefined;
  /** The tag of a keyword ("PatientName" -> 0x00100010). */
  tagOf(keyword: string): number | undefined;
}

let loading: Promise<Dictionary> | undefined;

/** The dictionary, loaded once (about 1.3 MB of data, ~0.2 s the first time). */
export function dictionary(): Promise<Dictionary> {
  return (loading ??= import('dcmjs/dictionary').then((m) => build(m.dictionary as Record<string, DictionaryEntry>)));
}

const hex4 = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');

/** "(0010,0010)" of a tag, as the dictionary keys its entries. */
const keyOf = (tag: number) => `(${hex4(tag >>> 16)},${hex4(tag & 0xffff)})`;

/**
 * One VR for the standard's "OB or OW" (ox), "US or SS" (xs), "US or OW" (lt): the ones an implicit
 * VR Little Endian reader should use (PS3.5 A.1 c: OW for pixel data and overlays, US for descriptors).
 */
const ONE_VR: Record<string, string> = { ox: 'OW', xs: 'US', lt: 'OW', up: 'UL', na: 'UN' };

function build(entries: Record<string, DictionaryEntry>): Dictionary {
  const byKeyword = new Map<string, number>();
  for (const [key, entry] of Object.entries(entries)) {
    const m = /^\(([0-9A-F]{4}),([0-9A-F]{4})\)$/i.exec(key);
    if (!m || entry.version !== 'DICOM' || !entry.name) continue;
    byKeyword.set(entry.name, (parseInt(m[1]!, 16) << 16 | parseInt(m[2]!, 16)) >>> 0);
  }
  const vrOfEntry = (e: DictionaryEntry | undefined) => (e ? ONE_VR[e.vr] ?? e.vr : undefined);
  return {
    vr(tag) {
      const group = tag >>> 16;
      const element = tag & 0xffff;
      if (element === 0) return 'UL'; // group length
      if (group % 2 === 1) return element >= 0x10 && element <= 0xff ? 'LO' : undefined; // private creator, else unknown
      const exact = vrOfEntry(entries[keyOf(tag)]);
      if (exact) return exact;
      // Repeating groups: overlays (60xx) and curves (50xx), keyed by their range.
      if ((group & 0xff00) === 0x6000 || (group & 0xff00) === 0x5000) {
        const base = group & 0xff00;
        return vrOfEntry(entries[`(${hex4(base)}-${hex4(base + 0xff)},${hex4(element)})`]);
      }
      return undefined;
    },
    tagOf: (keyword) => byKeyword.get(keyword),
  };
}
