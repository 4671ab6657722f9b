// Content negotiation (RFC 9110 §12.5.1 and PS3.18 §8.7): the Accept header as media ranges in
// order of preference, and the choice of what to send for frames, instances and JSON among what
// the server can give. Nothing acceptable: undefined, answered 406 with what is available.
import { EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, transferSyntax } from '../../shared/transfer-syntax.js';
import type { ImageAttributes } from '../../shared/protocol.js';

export interface MediaRange {
  /** Lower-cased `type/subtype`, `*` wildcards kept. */
  type: string;
  /** Lower-cased names; values unquoted, as written. */
  params: Map<string, string>;
  q: number;
}

/** Parsed Accept headers: a viewer sends the same one with every request. */
const parsedAccepts = new Map<string, readonly MediaRange[]>();
const PARSED_ACCEPTS_KEPT = 64;

/**
 * The media ranges of an Accept header, most preferred first (equal q: as written); none given:
 * `*\/*`. The answer is shared by every request with the same header: read it, never change it.
 */
export function parseAccept(header: string | undefined): readonly MediaRange[] {
  const key = header ?? '';
  let ranges = parsedAccepts.get(key);
  if (!ranges) {
    if (parsedAccepts.size >= PARSED_ACCEPTS_KEPT) parsedAccepts.clear();
    parsedAccepts.set(key, ranges = parseMediaRanges(header));
  }
  return ranges;
}

function parseMediaRanges(header: string | undefined): MediaRange[] {
  if (!header || !header.trim()) return [{ type: '*/*', params: new Map(), q: 1 }];
  const ranges: MediaRange[] = [];
  for (const item of splitOutsideQuotes(header, ',')) {
    const [typePart, ...paramParts] = splitOutsideQuotes(item, ';');
    const type = typePart!.trim().toLowerCase();
    if (!type) continue;
    const params = new Map<string, string>();
    for (const p of paramParts) {
      const eq = p.indexOf('=');
      if (eq < 0) continue;
      params.set(p.slice(0, eq).trim().toLowerCase(), p.slice(eq + 1).trim().replace(/^"(.*)"$/s, '$1'));
    }
    const q = params.has('q') ? Number(params.get('q')) : 1;
    params.delete('q');
    if (Number.isFinite(q) && q > 0) ranges.push({ type, params, q });
  }
  return ranges.map((r, i) => ({ r, i })).sort((a, b) => b.r.q - a.r.q || a.i - b.i).map(({ r }) => r);
}

function splitOutsideQuotes(text: string, separator: string): string[] {
  const parts: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') quoted = !quoted;
    else if (c === separator && !quoted) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

const matchesType = (range: string, type: string) =>
  range === '*/*' || range === type || (range.endsWith('/*') && type.startsWith(range.slice(0, -1)));

/** One way the server can send a frame: its transfer syntax and the media type of that syntax. */
export interface FrameOffer { transferSyntaxUid: string; mediaType: string }

/**
 * What frames of an instance can be sent as: the stored transfer syntax first (as stored: native
 * frames of little-endian and deflated files are Explicit VR Little Endian bytes), then conversions.
 */
export function frameOffers(image: ImageAttributes): FrameOffer[] {
  const octets = (uid: string) => ({ transferSyntaxUid: uid, mediaType: 'application/octet-stream' });
  if (image.encapsulated) {
    return [{ transferSyntaxUid: image.transferSyntaxUid, mediaType: transferSyntax(image.transferSyntaxUid)?.mediaType ?? 'application/octet-stream' }];
  }
  if (image.bigEndian) return [octets(EXPLICIT_VR_BIG_ENDIAN), octets(EXPLICIT_VR_LITTLE_ENDIAN)];
  // Native pixel bytes do not depend on the VR encoding: Implicit VR Little Endian is the same bytes.
  return [octets(EXPLICIT_VR_LITTLE_ENDIAN), octets(IMPLICIT_VR_LITTLE_ENDIAN)];
}

export interface Choice<Offer> {
  offer: Offer;
  /** multipart/related (else the bare body: a single frame or instance asked for without multipart). */
  multipart: boolean;
}

/**
 * The frame offer the Accept header prefers. `multipart/related; type=…; transfer-syntax=…` as
 * PS3.18 §8.7.3 says (`transfer-syntax=*`: as stored; none given with application/octet-stream:
 * Explicit VR Little Endian, the standard's default); a bare media type only for one frame.
 */
export function chooseFrameOffer(ranges: readonly MediaRange[], offers: FrameOffer[], single: boolean): Choice<FrameOffer> | undefined {
  for (const range of ranges) {
    let inner: string;
    let multipart: boolean;
    if (range.type === 'multipart/related' || range.type === 'multipart/*') {
      inner = (range.params.get('type') ?? 'application/octet-stream').toLowerCase();
      multipart = true;
    } else if (range.type === '*/*') {
      inner = '*/*';
      multipart = true;
    } else if (single) {
      inner = range.type;
      multipart = false;
    } else continue;
    const syntax = range.params.get('transfer-syntax');
    // application/octet-stream names bytes of any transfer syntax (`*`: as stored, none: Explicit
    // VR Little Endian), as Orthanc and OHIF use it; an image/… type names its codestream family.
    const octets = inner === 'application/octet-stream';
    const found = offers.find((o) => {
      if (!octets && !matchesType(inner, o.mediaType)) return false;
      if (syntax === '*' || (syntax === undefined && !octets)) return true;
      return o.transferSyntaxUid === (syntax ?? EXPLICIT_VR_LITTLE_ENDIAN);
    });
    const offer = found && octets ? { ...found, mediaType: 'application/octet-stream' } : found;
    if (offer) return { offer, multipart };
  }
  return undefined;
}

/** The offers as Accept values, for a 406's message. */
export function describeOffers(offers: FrameOffer[]): string {
  return offers.map((o) => `multipart/related; type="${o.mediaType}"; transfer-syntax=${o.transferSyntaxUid}`).join(', ');
}

/**
 * Whether the stored files can be sent (`multipart/related; type="application/dicom"`, or bare
 * application/dicom for one instance): only as stored, so a transfer syntax other than `*` or
 * the stored one is refused.
 */
export function chooseInstances(ranges: readonly MediaRange[], storedSyntaxes: ReadonlySet<string>, single: boolean): { multipart: boolean } | undefined {
  for (const range of ranges) {
    const multipart = range.type === 'multipart/related' || range.type === 'multipart/*' || range.type === '*/*';
    const inner = range.type === '*/*' ? '*/*' : multipart ? (range.params.get('type') ?? 'application/dicom').toLowerCase() : range.type;
    if (!multipart && !single) continue;
    if (!matchesType(inner, 'application/dicom')) continue;
    const syntax = range.params.get('transfer-syntax');
    if (syntax !== undefined && syntax !== '*' && !(storedSyntaxes.size === 1 && storedSyntaxes.has(syntax))) continue;
    return { multipart };
  }
  return undefined;
}

/** Whether DICOM JSON is acceptable (application/dicom+json, application/json, or a wildcard). */
export function acceptsJson(ranges: readonly MediaRange[]): boolean {
  return ranges.some((r) => matchesType(r.type, 'application/dicom+json') || matchesType(r.type, 'application/json'));
}
