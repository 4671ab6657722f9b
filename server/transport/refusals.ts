// What a client message is refused for, and with which code: pure rules over the message, the
// connection's standing and its load, so they are unit-tested alone and the hostile test checks
// the server against these same rules. A session sends the refusal; nothing here has effects.
import type { DecodedClientMessage, RequestFrames, WireErrorCodeName } from '../../shared/protocol.js';

export interface Refusal {
  code: WireErrorCodeName;
  message: string;
}

/** Frame errors one request may get; a request with more bad frames is refused whole. */
export const MAX_FRAME_ERRORS = 100;
/** Longest UID a request may name (DICOM's are at most 64 characters; some files stretch that). */
export const MAX_UID_LENGTH = 256;

/** Where the connection stands with the handshake and its grant. */
export interface Standing {
  handshaken: boolean;
  /** No grant, or its token has expired. */
  expired: boolean;
}

/** What is queued now: this connection's requests and frames, and all connections' frames. */
export interface RequestLoad {
  isOpen(requestId: number): boolean;
  openRequests: number;
  queuedFrames: number;
  queuedFramesInAll: number;
}

export interface RefusalLimits {
  maxOpenRequests: number;
  maxFramesPerRequest: number;
  maxQueuedFrames: number;
  maxQueuedFramesInAll: number;
}

/** Nothing queued anywhere: the refusals a request gets whatever the load. */
export const NO_LOAD: RequestLoad = { isOpen: () => false, openRequests: 0, queuedFrames: 0, queuedFramesInAll: 0 };

/** The request id an answer to this message carries (0 for messages without one). */
export function requestIdOf(message: DecodedClientMessage): number {
  switch (message.kind) {
    case 'listStudies': return message.listStudies.requestId;
    case 'openSeries': return message.openSeries.requestId;
    case 'requestFrames': return message.requestFrames.requestId;
    case 'cancel': return message.cancel.requestId;
    case 'authenticate': return message.authenticate.requestId;
    default: return 0;
  }
}

export const TEXT_MESSAGE: Refusal = { code: 'MALFORMED_MESSAGE', message: 'text message: the protocol is binary protobuf' };

export function rateLimited(messagesPerSecond: number): Refusal {
  return { code: 'RATE_LIMITED', message: `over ${messagesPerSecond} messages a second: request refused` };
}

/** Hello with a version this server does not speak (the connection is then closed). */
export function helloRefusal(version: number, served: number): Refusal | undefined {
  if (version === served) return undefined;
  return { code: 'UNSUPPORTED_VERSION', message: `protocol version ${version} is not served; this server speaks ${served}` };
}

/** A message other than Hello, refused for the connection's standing or its own form. */
export function messageRefusal(message: DecodedClientMessage, standing: Standing): Refusal | undefined {
  if (message.kind === 'hello') return undefined;
  if (!standing.handshaken) return { code: 'HANDSHAKE_REQUIRED', message: 'send Hello first' };
  // Every request is checked against the grant; an expired token may be replaced in-band (Authenticate).
  if (standing.expired && (message.kind === 'listStudies' || message.kind === 'openSeries' || message.kind === 'requestFrames')) {
    return { code: 'UNAUTHENTICATED', message: 'the token has expired: send Authenticate with a new one' };
  }
  if (message.kind === 'updateGroup' && message.updateGroup.groupId === 0) return { code: 'MALFORMED_MESSAGE', message: 'group_id must not be 0' };
  return undefined;
}

/** A frame request refused whole before anything is looked up or loaded for it. */
export function requestFramesRefusal(r: Pick<RequestFrames, 'requestId' | 'frames'>, load: RequestLoad, limits: RefusalLimits): Refusal | undefined {
  const tooMany = (message: string): Refusal => ({ code: 'TOO_MANY_REQUESTS', message });
  if (r.requestId === 0) return { code: 'MALFORMED_MESSAGE', message: 'request_id must not be 0' };
  if (load.isOpen(r.requestId)) return { code: 'DUPLICATE_REQUEST_ID', message: `request ${r.requestId} is still open` };
  if (load.openRequests >= limits.maxOpenRequests) return tooMany(`at most ${limits.maxOpenRequests} open requests per connection`);
  if (r.frames.length > limits.maxFramesPerRequest) return tooMany(`at most ${limits.maxFramesPerRequest} frames per request`);
  if (load.queuedFrames + r.frames.length > limits.maxQueuedFrames) {
    return tooMany(`at most ${limits.maxQueuedFrames} frames queued per connection: wait for some, or cancel`);
  }
  // A UID is at most 64 characters (PS3.5); far longer ones are refused before they are echoed back.
  if (r.frames.some((f) => f.sopInstanceUid.length > MAX_UID_LENGTH)) {
    return { code: 'MALFORMED_MESSAGE', message: `a SOP Instance UID longer than ${MAX_UID_LENGTH} characters: request refused` };
  }
  if (load.queuedFramesInAll + r.frames.length > limits.maxQueuedFramesInAll) return tooMany('the server has too many frames queued: try again shortly');
  return undefined;
}

/** One error per bad frame, but not a flood of them: past MAX_FRAME_ERRORS the request is refused whole. */
export function badFramesRefusal(bad: number, asked: number): Refusal | undefined {
  if (bad <= MAX_FRAME_ERRORS) return undefined;
  return { code: 'MALFORMED_MESSAGE', message: `${bad} of the ${asked} frames asked for do not exist (more than ${MAX_FRAME_ERRORS}): request refused` };
}

/** A UID as it can be quoted in an error: short and without control characters. */
export function printable(uid: string): string {
  const clean = uid.replace(/[^\x20-\x7e]/g, '?');
  return JSON.stringify(clean.length > 80 ? clean.slice(0, 80) + '…' : clean);
}
