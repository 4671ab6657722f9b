// The wire protocol, as both sides use it: plain types derived from proto/dicomstream.proto and
// pure encode/decode functions. The generated protobufjs code stays behind this module.
import protobuf from 'protobufjs/minimal.js';
import { CodedError } from './coded-error.js';
import { ERRORS, type ErrorCodeName } from './errors.js';
import { dicomstream } from './generated/proto.js';

export { CodedError, ERRORS, type ErrorCodeName };
export type { ErrorInfo } from './errors.js';

const v1 = dicomstream.v1;

export const PROTOCOL_VERSION = 1;

/** Fields of a decoded message, without protobufjs' bookkeeping. */
type Plain<T> = { [K in keyof T as K extends `$${string}` ? never : T[K] extends (...args: never[]) => unknown ? never : K]: T[K] };
type Shape<T> = { -readonly [K in keyof T]?: T[K] | null };

export type ClientMessage = dicomstream.v1.ClientMessage.$Shape;
export type ServerMessage = dicomstream.v1.ServerMessage.$Shape;

export type Hello = Plain<dicomstream.v1.Hello>;
export type ListStudies = Plain<dicomstream.v1.ListStudies>;
export type OpenSeries = Plain<dicomstream.v1.OpenSeries>;
export type FrameRef = { sopInstanceUid: string; frameNumber: number; position?: number };
export type RequestFrames = Omit<Plain<dicomstream.v1.RequestFrames>, 'frames'> & { frames: FrameRef[] };
export type Cancel = Plain<dicomstream.v1.Cancel>;
/** Optional fields are absent (undefined) when not sent. */
/** How a frame group (what one viewport wants from one series) shares the connection. */
export interface GroupSettings {
  /** Higher goes first. */
  priority?: number;
  /** Share among groups of the same priority (weighted round-robin). */
  weight?: number;
  /** Stack position on screen: the group's queued frames go outward from it. */
  focus?: number;
}
export type UpdateGroup = { groupId: number } & GroupSettings;
export type CancelGroup = Plain<dicomstream.v1.CancelGroup>;
export type WindowUpdate = Plain<dicomstream.v1.WindowUpdate>;
export type Authenticate = Plain<dicomstream.v1.Authenticate>;
export type Authenticated = Plain<dicomstream.v1.Authenticated>;

export type Limits = Plain<dicomstream.v1.Limits>;
export type Welcome = Omit<Plain<dicomstream.v1.Welcome>, 'limits'> & { limits: Limits };
export type SeriesSummary = Plain<dicomstream.v1.SeriesSummary>;
export type StudySummary = Omit<Plain<dicomstream.v1.StudySummary>, 'series'> & { series: SeriesSummary[] };
export type StudyList = Omit<Plain<dicomstream.v1.StudyList>, 'studies'> & { studies: StudySummary[] };
export type LookupTable = Plain<dicomstream.v1.LookupTable>;
export type FrameAttributes = Plain<dicomstream.v1.FrameAttributes>;
export type PetAttributes = Plain<dicomstream.v1.PetAttributes>;
export type ImageAttributes = Omit<
  Plain<dicomstream.v1.ImageAttributes>,
  'modalityLut' | 'voiLuts' | 'redPalette' | 'greenPalette' | 'bluePalette' | 'frames' | 'pet'
> & {
  modalityLut: LookupTable | null;
  voiLuts: LookupTable[];
  redPalette: LookupTable | null;
  greenPalette: LookupTable | null;
  bluePalette: LookupTable | null;
  frames: FrameAttributes[];
  pet: PetAttributes | null;
};
export type SeriesManifest = Omit<Plain<dicomstream.v1.SeriesManifest>, 'instances' | 'study'> & { instances: ImageAttributes[]; study: StudySummary | null };
export type FrameChunkHeader = Omit<Plain<dicomstream.v1.FrameChunk>, 'instance' | 'padding'> & { instance: ImageAttributes | null };
export type RequestComplete = Plain<dicomstream.v1.RequestComplete>;
export type ErrorMessage = Plain<dicomstream.v1.Error>;
export type SeriesUpdated = Plain<dicomstream.v1.SeriesUpdated>;
/** A partial shape for building messages to encode. */
export type ImageAttributesInit = Shape<Plain<dicomstream.v1.ImageAttributes>>;

export const ErrorCode = v1.ErrorCode;
export type ErrorCode = dicomstream.v1.ErrorCode;
/** The stable name of an error code, e.g. 'UNKNOWN_INSTANCE' (`ERROR_n` for a number this version does not know). */
export function errorCodeName(code: number): string {
  return v1.ErrorCode[code] ?? `ERROR_${code}`;
}

/** The error table's names of the wire codes. */
export type WireErrorCodeName = Extract<ErrorCodeName, keyof typeof dicomstream.v1.ErrorCode>;

/** The error table's code of a wire error; a code from a newer server that this one lacks is INTERNAL. */
function wireErrorCode(code: number): WireErrorCodeName {
  const name = v1.ErrorCode[code];
  return name !== undefined && name in ERRORS && ERRORS[name as ErrorCodeName].surface === 'wire' ? name as WireErrorCodeName : 'INTERNAL';
}

const objectOptions = { defaults: true, arrays: true, longs: Number, enums: Number } as const;

// ------------------------------------------------------------------ client messages

export function encodeClientMessage(message: ClientMessage): Uint8Array {
  return v1.ClientMessage.encode(message).finish();
}

export type DecodedClientMessage =
  | { kind: 'hello'; hello: Hello }
  | { kind: 'listStudies'; listStudies: ListStudies }
  | { kind: 'openSeries'; openSeries: OpenSeries }
  | { kind: 'requestFrames'; requestFrames: RequestFrames }
  | { kind: 'cancel'; cancel: Cancel }
  | { kind: 'updateGroup'; updateGroup: UpdateGroup }
  | { kind: 'cancelGroup'; cancelGroup: CancelGroup }
  | { kind: 'windowUpdate'; windowUpdate: WindowUpdate }
  | { kind: 'authenticate'; authenticate: Authenticate }
  | { kind: 'useHttpStream' };

/** Decodes one client message; throws an Error (code MALFORMED_MESSAGE) for anything else. */
export function decodeClientMessage(bytes: Uint8Array): DecodedClientMessage {
  let message: dicomstream.v1.ClientMessage;
  try {
    message = v1.ClientMessage.decode(bytes);
  } catch (error) {
    throw protocolError(ErrorCode.MALFORMED_MESSAGE, `not a ClientMessage: ${(error as Error).message}`);
  }
  const o = v1.ClientMessage.toObject(message, objectOptions) as Record<string, unknown>;
  switch (message.body) {
    case 'hello': return { kind: 'hello', hello: o.hello as Hello };
    case 'listStudies': return { kind: 'listStudies', listStudies: o.listStudies as ListStudies };
    case 'openSeries': return { kind: 'openSeries', openSeries: o.openSeries as OpenSeries };
    case 'requestFrames': return { kind: 'requestFrames', requestFrames: o.requestFrames as RequestFrames };
    case 'cancel': return { kind: 'cancel', cancel: o.cancel as Cancel };
    case 'updateGroup': return { kind: 'updateGroup', updateGroup: o.updateGroup as UpdateGroup };
    case 'cancelGroup': return { kind: 'cancelGroup', cancelGroup: o.cancelGroup as CancelGroup };
    case 'windowUpdate': return { kind: 'windowUpdate', windowUpdate: o.windowUpdate as WindowUpdate };
    case 'authenticate': return { kind: 'authenticate', authenticate: o.authenticate as Authenticate };
    case 'useHttpStream': return { kind: 'useHttpStream' };
    default: throw protocolError(ErrorCode.MALFORMED_MESSAGE, 'ClientMessage has no body');
  }
}

// ------------------------------------------------------------------ server messages

/**
 * Encodes a server message as it starts a WebSocket message: varint length, then the message.
 * For a FrameChunk, `reserve` bytes are left free after it for the payload, so the caller can
 * read the pixel bytes straight into place (one buffer, no copy); `alloc` may hand out reused buffers.
 */
export function encodeServerMessage(
  message: ServerMessage, reserve = 0, alloc: (size: number) => Uint8Array = allocUnsafe,
): { buffer: Uint8Array; payloadOffset: number } {
  // A payload behind the header starts aligned; one sent as its own message needs no padding.
  const header = message.frameChunk && !message.frameChunk.payloadFollows ? alignedHeader(message.frameChunk) : v1.ServerMessage.encodeDelimited(message).finish();
  if (reserve === 0) return { buffer: header, payloadOffset: header.length };
  const buffer = alloc(header.length + reserve);
  buffer.set(header, 0);
  return { buffer, payloadOffset: header.length };
}

/** Where a frame chunk's payload starts in its message: a multiple of this. */
export const PAYLOAD_ALIGNMENT = 8;

/**
 * A FrameChunk's header padded (its `padding` field) to a multiple of PAYLOAD_ALIGNMENT bytes,
 * so that the payload after it can be viewed as 16- or 32-bit samples where it lands. Encoded once;
 * the padding field is appended to the FrameChunk's bytes and the two length prefixes rewritten.
 */
function alignedHeader(chunk: NonNullable<ServerMessage['frameChunk']>): Uint8Array {
  const plain = v1.ServerMessage.encodeDelimited({ frameChunk: chunk }).finish();
  if (plain.length % PAYLOAD_ALIGNMENT === 0) return plain;
  // plain = varint(body) · 0x22 (field 4, bytes) · varint(chunk) · chunk
  const reader = protobuf.Reader.create(plain);
  reader.uint32();
  reader.uint32(); // the tag
  const chunkLength = reader.uint32();
  const chunkBytes = plain.subarray(reader.pos, reader.pos + chunkLength);
  // Padding of n bytes adds its tag (0x42: field 8, bytes), its length (one byte below 128) and n zeros.
  for (let n = 0; ; n++) {
    const padded = chunkLength + 2 + n;
    const body = 1 + varintLength(padded) + padded;
    const total = varintLength(body) + body;
    if (total % PAYLOAD_ALIGNMENT !== 0) continue;
    const out = new Uint8Array(total);
    let at = writeVarint(out, 0, body);
    out[at++] = 0x22;
    at = writeVarint(out, at, padded);
    out.set(chunkBytes, at);
    at += chunkLength;
    out[at++] = 0x42;
    out[at] = n; // the zeros follow: a new Uint8Array is zero-filled
    return out;
  }
}

function varintLength(value: number): number {
  let n = 1;
  while (value >= 0x80) { value = Math.floor(value / 0x80); n++; }
  return n;
}

function writeVarint(out: Uint8Array, at: number, value: number): number {
  while (value >= 0x80) { out[at++] = (value & 0x7f) | 0x80; value = Math.floor(value / 0x80); }
  out[at++] = value;
  return at;
}

export type DecodedServerMessage =
  | { kind: 'welcome'; welcome: Welcome }
  | { kind: 'studyList'; studyList: StudyList }
  | { kind: 'seriesManifest'; seriesManifest: SeriesManifest }
  | { kind: 'frameChunk'; frameChunk: FrameChunkHeader; payload: Uint8Array }
  | { kind: 'requestComplete'; requestComplete: RequestComplete }
  | { kind: 'error'; error: ErrorMessage }
  | { kind: 'seriesUpdated'; seriesUpdated: SeriesUpdated }
  | { kind: 'authenticated'; authenticated: Authenticated }
  | { kind: 'httpStreamOpened' };

/** Decodes one server WebSocket message. A FrameChunk's payload is a view into `bytes` (no copy). */
export function decodeServerMessage(bytes: Uint8Array): DecodedServerMessage {
  const reader = protobuf.Reader.create(bytes);
  const length = reader.uint32();
  const start = reader.pos;
  if (start + length > bytes.length) throw protocolError(ErrorCode.MALFORMED_MESSAGE, 'server message shorter than its header');
  const message = v1.ServerMessage.decode(bytes.subarray(start, start + length));
  if (message.body === 'frameChunk' && message.frameChunk) {
    const c = message.frameChunk as dicomstream.v1.FrameChunk;
    const frameChunk: FrameChunkHeader = {
      requestId: c.requestId, sopInstanceUid: c.sopInstanceUid, frameNumber: c.frameNumber, offset: c.offset,
      totalLength: c.totalLength, bitOffset: c.bitOffset, payloadFollows: c.payloadFollows,
      instance: c.instance ? (v1.ImageAttributes.toObject(c.instance as dicomstream.v1.ImageAttributes, objectOptions) as ImageAttributes) : null,
    };
    return { kind: 'frameChunk', frameChunk, payload: bytes.subarray(start + length) };
  }
  const o = v1.ServerMessage.toObject(message, objectOptions) as Record<string, unknown>;
  switch (message.body) {
    case 'welcome': return { kind: 'welcome', welcome: o.welcome as Welcome };
    case 'studyList': return { kind: 'studyList', studyList: o.studyList as StudyList };
    case 'seriesManifest': return { kind: 'seriesManifest', seriesManifest: o.seriesManifest as SeriesManifest };
    case 'requestComplete': return { kind: 'requestComplete', requestComplete: o.requestComplete as RequestComplete };
    case 'error': return { kind: 'error', error: o.error as ErrorMessage };
    case 'seriesUpdated': return { kind: 'seriesUpdated', seriesUpdated: o.seriesUpdated as SeriesUpdated };
    case 'authenticated': return { kind: 'authenticated', authenticated: o.authenticated as Authenticated };
    case 'httpStreamOpened': return { kind: 'httpStreamOpened' };
    default: throw protocolError(ErrorCode.MALFORMED_MESSAGE, 'ServerMessage has no body');
  }
}

// ------------------------------------------------------------------ errors

/** An Error with the protocol's stable code: `code` is the name ('UNKNOWN_INSTANCE'), `errorCode` the number. */
export class ProtocolError extends CodedError<WireErrorCodeName> {
  readonly errorCode: number;
  readonly requestId: number;
  /** The frame an error is about, for frame errors. */
  sopInstanceUid?: string;
  frameNumber?: number;
  constructor(errorCode: number, message: string, requestId = 0) {
    super(wireErrorCode(errorCode), message);
    this.errorCode = errorCode;
    this.requestId = requestId;
  }
}

export function protocolError(code: number, message: string, requestId = 0): ProtocolError {
  return new ProtocolError(code, message, requestId);
}

function allocUnsafe(size: number): Uint8Array {
  // Buffer in Node (no zero-fill: every byte is written before it is sent), a plain array elsewhere.
  const B = (globalThis as { Buffer?: { allocUnsafe(n: number): Uint8Array } }).Buffer;
  return B ? B.allocUnsafe(size) : new Uint8Array(size);
}
