// What a decode pool offers, in browsers (Web Workers, worker/decode-pool.ts) and in Node (decodes
// in-process, here): the same calls, so code that makes and closes a pool runs in both.
import { decodeFrame, DecodeError, type DecodedFrame, type DecodeInstance } from './decode/index.js';
import { defaultDecoders } from './decode/decoders.js';

/** What a closed pool's pending and later decodes reject with. */
export const poolClosed = (): DecodeError => new DecodeError('POOL_TERMINATED', 'the decode pool was closed');

export interface FrameDecodePool {
  /** `transfer: true` hands the frame's buffer to a worker (no copy; `bytes` is unusable afterwards). */
  decode(bytes: Uint8Array, instance: DecodeInstance, options?: { bitOffset?: number; transfer?: boolean }): Promise<DecodedFrame>;
  /**
   * Starts `workers` workers now (default: all) with the codecs of these transfer syntaxes loaded,
   * so the first decodes wait for neither.
   */
  warm(transferSyntaxUids?: string[], workers?: number): void;
  /** Stops the workers; pending decodes and any later one reject with POOL_TERMINATED. */
  close(): void;
  /** Workers running now. */
  readonly running: number;
}

/** Node's pool: no workers, decodes in this thread; closed, it refuses as a browser pool does. */
export class InProcessDecodePool implements FrameDecodePool {
  private closed = false;
  readonly running = 0;

  decode(bytes: Uint8Array, instance: DecodeInstance, options: { bitOffset?: number } = {}): Promise<DecodedFrame> {
    if (this.closed) return Promise.reject(poolClosed());
    return decodeFrame(bytes, instance, options.bitOffset === undefined ? {} : { bitOffset: options.bitOffset });
  }

  warm(transferSyntaxUids: string[] = []): void {
    // No workers here; the codecs load in-process (a failure shows at the first frame that needs it).
    for (const uid of transferSyntaxUids) defaultDecoders.load(uid)?.catch(() => undefined);
  }

  close(): void {
    this.closed = true;
  }
}
