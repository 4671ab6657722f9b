// dicomstream/client in browsers: the same API, with frames decoded in a pool of Web Workers.
// decodeFrame uses a default pool, started on first use; a viewer that wants its own (a size of
// its choosing, closed with the viewer) makes one with createDecodePool().
import type { DecodedFrame, DecodeInstance, Rescale, RescaledFrame } from './decode/index.js';
import { DecodePool, type PoolDecodeOptions } from './worker/decode-pool.js';

export * from './index.js';
export { DecodePool, type PoolDecodeOptions } from './worker/decode-pool.js';

let pool: DecodePool | undefined;

/**
 * Starts the decode worker beside this bundle (dist/browser/decode-worker.js). Written as one
 * literal `new Worker(new URL(…, import.meta.url), { type: 'module' })`: the only form Vite and
 * webpack follow to ship the worker with an app that bundles the client.
 */
const startWorker = (): Worker => new Worker(new URL('./decode-worker.js', import.meta.url), { type: 'module' });

/**
 * Decodes a frame in a worker. With `transfer: true` the frame's buffer is handed to the worker
 * (no copy; `bytes` is unusable afterwards); by default it is copied.
 */
export function decodeFrame(bytes: Uint8Array, instance: DecodeInstance, options: PoolDecodeOptions & { rescale: Rescale }): Promise<RescaledFrame>;
export function decodeFrame(bytes: Uint8Array, instance: DecodeInstance, options?: PoolDecodeOptions): Promise<DecodedFrame>;
export function decodeFrame(bytes: Uint8Array, instance: DecodeInstance, options: PoolDecodeOptions = {}): Promise<DecodedFrame | RescaledFrame> {
  return defaultPool().decode(bytes, instance, options);
}

/**
 * Starts the decode workers ahead of the first frame (a page calls it while it connects): `workers`
 * of them (default: all), with the codecs of these transfer syntaxes loaded.
 */
export function prepareDecoders(transferSyntaxUids: string[] = [], workers?: number): void {
  defaultPool().warm(transferSyntaxUids, workers);
}

/**
 * Stops the default pool's workers; its pending decodes reject with POOL_TERMINATED. A later
 * decodeFrame starts a new pool.
 */
export function closeDecoders(): void {
  pool?.close();
  pool = undefined;
}

/** A decode pool of its own: `size` workers at most (default: one per core, 1..4; each one more only once those running fall behind). Close it with close(). */
export function createDecodePool(size?: number): DecodePool {
  return new DecodePool(startWorker, size);
}

function defaultPool(): DecodePool {
  pool ??= createDecodePool();
  return pool;
}
