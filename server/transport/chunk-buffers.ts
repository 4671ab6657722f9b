// Reusable buffers for frame chunks: a chunk's buffer comes back once the socket has written it,
// so steady streaming allocates nothing and the garbage collector stays out of the way.
export class ChunkBuffers {
  private readonly free: Uint8Array[] = [];
  /** Buffers handed out or kept, at most `limit` are kept for reuse. */
  constructor(readonly capacity: number, private readonly limit = 64) {}

  /** A buffer of exactly `size` bytes: a view of a pooled one when it fits. */
  take(size: number): Uint8Array {
    // A small chunk (the end of a frame, a small frame) gets a buffer of its own size: holding a
    // whole pooled buffer for it would let many small chunks in flight take far more memory than
    // their bytes, which the per-connection bound counts.
    if (size > this.capacity || size < this.capacity / 8) return Buffer.allocUnsafe(size);
    const buffer = this.free.pop() ?? Buffer.allocUnsafeSlow(this.capacity);
    return buffer.subarray(0, size);
  }

  /** Gives a buffer from `take` back, once nothing reads it any more. */
  give(view: Uint8Array): void {
    if (view.buffer.byteLength !== this.capacity || view.byteOffset !== 0 || this.free.length >= this.limit) return;
    this.free.push(new Uint8Array(view.buffer, 0, this.capacity));
  }
}
