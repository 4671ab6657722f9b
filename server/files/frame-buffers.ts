// Reusable buffers for whole frames read straight from their files (not kept by the frame cache):
// a buffer comes back once the response that carried it has been written, so serving a series
// larger than the cache allocates nothing per frame. Each has room before the frame for a message
// header (headroom.ts), so a WebSocket sends header and frame as one view of it. Allocating half a
// megabyte a frame at a thousand frames a second makes V8 run a full mark-compact several times a
// second for the external memory alone, and those pauses are the latency tail.
import { allocFrame } from './headroom.js';

/** Below this a buffer is cheap to allocate and pooling it saves nothing. */
const MIN_POOLED = 64 * 1024;
/** Sizes are rounded up to 1, 1.25, 1.5 or 1.75 times a power of two: at most 25 % unused. */
const STEPS_PER_DOUBLING = 4;

/** A buffer of the pool: where its frames start (after the room for a header) and how large they may be. */
interface Pooled { buffer: ArrayBuffer; start: number; capacity: number }

export interface FrameBufferStats {
  /** Buffers allocated by the pool. */
  made: number;
  /** take() answered with a buffer given back earlier. */
  reused: number;
  /** Bytes of free buffers held for reuse now. */
  heldBytes: number;
}

export class FrameBuffers {
  /** Free buffers by size class. */
  private readonly free = new Map<number, Pooled[]>();
  /** Every buffer this pool made: give() ignores any other (a cached frame, a converted one). */
  private readonly owned = new WeakMap<ArrayBuffer, Pooled>();
  /** The buffers in `free`, so that giving one twice cannot hand it out twice. */
  private readonly idle = new Set<ArrayBuffer>();
  private freeBytes = 0;
  private made = 0;
  private reused = 0;

  /**
   * @param maxFreeBytes bytes of free buffers kept at most; beyond, given buffers are left to the GC
   * @param maxPooled frames larger than this get a buffer of their own
   */
  constructor(readonly maxFreeBytes: number, readonly maxPooled = 16 * 1024 * 1024) {}

  get stats(): FrameBufferStats {
    return { made: this.made, reused: this.reused, heldBytes: this.freeBytes };
  }

  /** A buffer of exactly `size` bytes, not zero-filled: a view of a pooled one when its size is pooled. */
  take(size: number): Uint8Array {
    if (size < MIN_POOLED || size > this.maxPooled) return Buffer.allocUnsafe(size);
    const capacity = sizeClass(size);
    const pooled = this.free.get(capacity)?.pop();
    if (pooled) {
      this.idle.delete(pooled.buffer);
      this.freeBytes -= capacity;
      this.reused++;
      return new Uint8Array(pooled.buffer, pooled.start, size);
    }
    const made = allocFrame(size, capacity);
    this.owned.set(made.buffer as ArrayBuffer, { buffer: made.buffer as ArrayBuffer, start: made.byteOffset, capacity });
    this.made++;
    return made;
  }

  /**
   * Gives back a buffer from take() once nothing reads it any more (the socket has written it).
   * Anything else is ignored, so a caller may give whatever bytes it sent.
   */
  give(view: Uint8Array): void {
    const buffer = view.buffer;
    const pooled = buffer instanceof ArrayBuffer ? this.owned.get(buffer) : undefined;
    if (!pooled || this.idle.has(buffer as ArrayBuffer)) return;
    if (this.freeBytes + pooled.capacity > this.maxFreeBytes) return;
    let list = this.free.get(pooled.capacity);
    if (!list) this.free.set(pooled.capacity, list = []);
    list.push(pooled);
    this.idle.add(pooled.buffer);
    this.freeBytes += pooled.capacity;
  }
}

/** `size` rounded up to its class: the next 1, 1.25, 1.5 or 1.75 × 2^k. */
export function sizeClass(size: number): number {
  const power = 2 ** Math.floor(Math.log2(size));
  const step = power / STEPS_PER_DOUBLING;
  return Math.ceil(size / step) * step;
}
