// Frames kept with room before them for a message header, so that a cached frame (or one read
// ahead into a reused buffer) goes out as one WebSocket message without being copied: the header
// is written into the room right before the frame's bytes and the socket sends the two as one view.
// One message at a time may use a buffer's room (the socket holds the view until it is written);
// others copy, as before.

/** Room before a cached frame: a FrameChunk header, with the instance's attributes for most images. */
export const HEADROOM_BYTES = 4096;

/** Frames smaller than this are copied anyway (cheap), and not given room. */
const MIN_FRAME_BYTES = 64 * 1024;

/** Buffers allocated with room before their frame. */
const roomy = new WeakSet<ArrayBufferLike>();
/** Buffers whose room a message uses now. */
const leased = new WeakSet<ArrayBufferLike>();

/**
 * A buffer for a frame of `length` bytes (not zero-filled), with room before it when it is large
 * enough; `capacity` (≥ length) when the buffer will be reused for frames up to that size.
 */
export function allocFrame(length: number, capacity = length): Uint8Array {
  const room = length >= MIN_FRAME_BYTES ? HEADROOM_BYTES : 0;
  const buffer = Buffer.allocUnsafeSlow(room + capacity).buffer;
  if (room) roomy.add(buffer);
  return new Uint8Array(buffer, room, length);
}

/**
 * `header` then `frame` as one view of the frame's own buffer, when the frame starts right after
 * the room (as allocFrame made it), the room holds the header, and no other message uses it;
 * `release` once the socket has written the view.
 */
export function withHeader(frame: Uint8Array, header: Uint8Array): { message: Uint8Array; release: () => void } | undefined {
  const buffer = frame.buffer;
  if (!roomy.has(buffer) || leased.has(buffer) || frame.byteOffset !== HEADROOM_BYTES || header.length > HEADROOM_BYTES) return undefined;
  leased.add(buffer);
  const start = frame.byteOffset - header.length;
  const message = new Uint8Array(buffer, start, header.length + frame.length);
  message.set(header, 0);
  return { message, release: () => { leased.delete(buffer); } };
}
