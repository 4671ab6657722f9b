// Frames kept with room before them for a message header, so that a cached frame goes out as one
// WebSocket message without being copied: the header is written into the room right before the
// frame's bytes and the socket sends the two as one view. One message at a time may use a
// buffer's room (the socket holds the view until it is written); others copy, as before.

/** Room before a cached frame: a FrameChunk header, with the instance's attributes for most images. */
export const HEADROOM_BYTES = 4096;

/** Frames smaller than this are copied anyway (cheap), and not given room. */
const MIN_FRAME_BYTES = 64 * 1024;

/** Buffers allocated with room before their frame. */
const roomy = new WeakSet<ArrayBufferLike>();
/** Buffers whose room a message uses now. */
const leased = new WeakSet<ArrayBufferLike>();

/** A buffer for a frame of `length` bytes (not zero-filled), with room before it when it is large enough. */
export function allocFrame(length: number): Uint8Array {
  const room = length >= MIN_FRAME_BYTES ? HEADROOM_BYTES : 0;
  const buffer = Buffer.allocUnsafeSlow(room + length).buffer;
  if (room) roomy.add(buffer);
  return new Uint8Array(buffer, room, length);
}

/**
 * `header` then `frame` as one view of the frame's own buffer, when it has room for the header
 * and no other message uses it; `release` once the socket has written the view.
 */
export function withHeader(frame: Uint8Array, header: Uint8Array): { message: Uint8Array; release: () => void } | undefined {
  const buffer = frame.buffer;
  if (!roomy.has(buffer) || leased.has(buffer) || header.length > frame.byteOffset || frame.byteOffset + frame.length !== buffer.byteLength) return undefined;
  leased.add(buffer);
  const start = frame.byteOffset - header.length;
  const message = new Uint8Array(buffer, start, header.length + frame.length);
  message.set(header, 0);
  return { message, release: () => { leased.delete(buffer); } };
}
