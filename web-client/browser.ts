// dicomstream/client in browsers: the same API, with frames decoded in a pool of Web Workers.
import type { DecodedFrame, DecodeInstance, DecodeOptions } from './decode/index.js';
import { DecodePool } from './worker/decode-pool.js';

export * from './index.js';

let pool: DecodePool | undefined;

/**
 * Decodes a frame in a worker. With `transfer: true` the frame's buffer is handed to the worker
 * (no copy; `bytes` is unusable afterwards); by default it is copied.
 */
export function decodeFrame(bytes: Uint8Array, instance: DecodeInstance, options: DecodeOptions & { transfer?: boolean } = {}): Promise<DecodedFrame> {
  return decodePool().decode(bytes, instance, options);
}

/** Starts the decode workers ahead of the first frame (a page calls it while it connects). */
export function prepareDecoders(): void {
  decodePool().warm();
}

function decodePool(): DecodePool {
  pool ??= new DecodePool(new URL('./decode-worker.js', import.meta.url));
  return pool;
}
