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
  pool ??= new DecodePool(new URL('./decode-worker.js', import.meta.url));
  return pool.decode(bytes, instance, options);
}
