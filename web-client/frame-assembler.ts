// Puts frames back together from their chunks. A frame sent in one chunk is handed on as a view
// of its message (no copy); a larger one is copied once, chunk by chunk, into its own buffer.
import { CodedError } from '../shared/coded-error.js';
import type { FrameChunkHeader, ImageAttributes } from '../shared/protocol.js';

export interface AssembledFrame {
  requestId: number;
  sopInstanceUid: string;
  frameNumber: number;
  bytes: Uint8Array;
  bitOffset: number;
  /** The instance's attributes, when the first chunk carried them. */
  instance: ImageAttributes | null;
}

interface Partial {
  bytes: Uint8Array;
  received: number;
  instance: ImageAttributes | null;
}

export class FrameAssembler {
  private readonly partial = new Map<string, Partial>();

  /** Adds a chunk; returns the frame when this chunk completes it. */
  add(header: FrameChunkHeader, payload: Uint8Array): AssembledFrame | undefined {
    const { requestId, sopInstanceUid, frameNumber, offset, totalLength, bitOffset } = header;
    if (offset === 0 && payload.length === totalLength) {
      return { requestId, sopInstanceUid, frameNumber, bytes: payload, bitOffset, instance: header.instance };
    }
    const key = `${requestId}\u0000${sopInstanceUid}\u0000${frameNumber}`;
    let frame = this.partial.get(key);
    if (!frame) {
      frame = { bytes: allocFrame(totalLength), received: 0, instance: header.instance };
      this.partial.set(key, frame);
    }
    if (offset + payload.length > frame.bytes.length) throw new CodedError('PROTOCOL_VIOLATION', `chunk past the end of frame ${frameNumber}`);
    frame.bytes.set(payload, offset);
    frame.received += payload.length;
    if (frame.received < totalLength) return undefined;
    this.partial.delete(key);
    return { requestId, sopInstanceUid, frameNumber, bytes: frame.bytes, bitOffset, instance: frame.instance };
  }

  /** Drops what was received of a request's frames (cancelled, failed or completed). */
  dropRequest(requestId: number, sopInstanceUid?: string, frameNumber?: number): void {
    const prefix = sopInstanceUid === undefined ? `${requestId}\u0000` : `${requestId}\u0000${sopInstanceUid}\u0000${frameNumber}`;
    for (const key of this.partial.keys()) if (key.startsWith(prefix)) this.partial.delete(key);
  }
}

/** A frame's buffer: not zero-filled in Node (every byte is written by its chunks before use). */
function allocFrame(length: number): Uint8Array {
  const B = (globalThis as { Buffer?: { allocUnsafeSlow(n: number): Uint8Array } }).Buffer;
  if (!B) return new Uint8Array(length);
  const b = B.allocUnsafeSlow(length);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}
