// A small pool of decode workers. Each decode goes to the least busy worker; the frame's bytes
// are transferred when the caller allows it (they are then unusable here), the pixels always.
// Workers get at most four decodes at a time; the rest wait here, highest priority first (then in
// order), so that an image the user looks at is not decoded after a whole prefetch.
// A pool is closed with close(): its workers stop, and pending and later decodes reject with
// POOL_TERMINATED, so a page that drops a viewer leaves no threads or promises behind.
import type { DecodedFrame, DecodeInstance, Rescale, RescaledFrame } from '../decode/decode-frame.js';
import { DecodeError } from '../decode/errors.js';
import { poolClosed, type FrameDecodePool } from '../decode-pool-api.js';
import type { DecodeRequest, DecodeResponse, WorkerDecodeOptions } from './messages.js';

/** decodeFrame's options in a pool; `transfer: true` hands the frame's buffer to the worker (no copy). */
export type PoolDecodeOptions = WorkerDecodeOptions & {
  transfer?: boolean;
  /** Higher is decoded first among the decodes still waiting for a worker. Default 0. */
  priority?: number;
};

/** Decodes handed to one worker at once: enough that it never waits for the page between two. */
const IN_FLIGHT_PER_WORKER = 4;

interface Queued extends Pending {
  request: DecodeRequest;
  transfer: ArrayBuffer[];
  priority: number;
}

interface Pending {
  resolve: (frame: DecodedFrame & RescaledFrame) => void;
  reject: (error: Error) => void;
}

interface PooledWorker {
  worker: Worker;
  busy: number;
}

export class DecodePool implements FrameDecodePool {
  private readonly workers: PooledWorker[] = [];
  private readonly pending = new Map<number, Pending & { worker: PooledWorker }>();
  /** Decodes waiting for a worker, highest priority first, in arrival order within a priority. */
  private readonly queue: Queued[] = [];
  private nextId = 1;
  private closed = false;
  /** Transfer syntaxes whose codecs every worker loads as it starts. */
  private readonly prepared = new Set<string>();

  private readonly newWorker: () => Worker;

  /**
   * `worker`: the decode worker script (dist/browser/decode-worker.js), or a function that starts
   * one (what the client's own pool passes, so that bundlers see the worker); `size`: workers at most.
   */
  constructor(worker: URL | (() => Worker), readonly size = defaultSize()) {
    this.newWorker = worker instanceof URL ? () => new Worker(worker, { type: 'module' }) : worker;
  }

  /** Decodes a frame in a worker (with `rescale`: and applies the modality LUT there). */
  decode(bytes: Uint8Array, instance: DecodeInstance, options: PoolDecodeOptions & { rescale: Rescale }): Promise<RescaledFrame>;
  decode(bytes: Uint8Array, instance: DecodeInstance, options?: PoolDecodeOptions): Promise<DecodedFrame>;
  decode(bytes: Uint8Array, instance: DecodeInstance, options: PoolDecodeOptions = {}): Promise<DecodedFrame | RescaledFrame> {
    if (this.closed) return Promise.reject(poolClosed());
    const id = this.nextId++;
    const { bitOffset, rescale } = options;
    const request: DecodeRequest = { id, bytes, instance: plainInstance(instance), options: { ...(bitOffset === undefined ? {} : { bitOffset }), ...(rescale ? { rescale } : {}) } };
    const transfer = options.transfer === true ? [bytes.buffer as ArrayBuffer] : [];
    const priority = options.priority ?? 0;
    return new Promise((resolve, reject) => {
      const at = this.queue.findIndex((q) => q.priority < priority);
      this.queue.splice(at < 0 ? this.queue.length : at, 0, { request, transfer, priority, resolve, reject });
      this.dispatch();
    });
  }

  /** Hands waiting decodes to workers with room for them. */
  private dispatch(): void {
    while (this.queue.length > 0) {
      const pooled = this.pick();
      if (pooled.busy >= IN_FLIGHT_PER_WORKER) return;
      const { request, transfer, resolve, reject } = this.queue.shift()!;
      this.pending.set(request.id, { resolve, reject, worker: pooled });
      pooled.busy++;
      pooled.worker.postMessage(request, transfer);
    }
  }

  /**
   * Starts `workers` workers now (default: all) and loads the codecs of these transfer syntaxes in
   * every worker, now and as more start: the first frames wait for neither.
   */
  warm(transferSyntaxUids: string[] = [], workers = this.size): void {
    if (this.closed) return;
    const fresh = transferSyntaxUids.filter((uid) => !this.prepared.has(uid));
    for (const uid of fresh) this.prepared.add(uid);
    if (fresh.length) for (const w of this.workers) w.worker.postMessage({ prepare: fresh });
    while (this.workers.length < Math.min(workers, this.size)) this.spawn();
  }

  /** Workers running now (started on demand, up to `size`). */
  get running(): number {
    return this.workers.length;
  }

  /** Stops the workers; pending decodes and any later one reject with POOL_TERMINATED. */
  close(): void {
    this.closed = true;
    for (const w of this.workers) w.worker.terminate();
    this.workers.length = 0;
    for (const p of this.pending.values()) p.reject(poolClosed());
    this.pending.clear();
    for (const q of this.queue.splice(0)) q.reject(poolClosed());
  }

  /** The same as close() (the Worker API's name). */
  terminate(): void {
    this.close();
  }

  private pick(): PooledWorker {
    const idle = this.workers.find((w) => w.busy === 0);
    if (idle) return idle;
    // Another worker (a thread, a copy of the codec) only once those running have a full queue:
    // quick decodes (native frames) keep to one, slow ones (JPEG-LS, JPEG 2000) spread over all.
    if (this.workers.length < this.size && this.workers.every((w) => w.busy >= IN_FLIGHT_PER_WORKER)) return this.spawn();
    return this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
  }

  private spawn(): PooledWorker {
    const worker = this.newWorker();
    const pooled = { worker, busy: 0 };
    worker.onmessage = (event: MessageEvent<DecodeResponse>) => this.answered(event.data);
    worker.onerror = (event) => this.failed(pooled, event.message || 'decode worker failed to load');
    if (this.prepared.size) worker.postMessage({ prepare: [...this.prepared] });
    this.workers.push(pooled);
    return pooled;
  }

  private answered(response: DecodeResponse): void {
    const p = this.pending.get(response.id);
    if (!p) return;
    this.pending.delete(response.id);
    p.worker.busy--;
    if (response.error) p.reject(new DecodeError(response.error.code, response.error.message));
    else if (response.rescaled) p.resolve({ pixels: response.pixels as RescaledFrame['pixels'], ...response.rescaled } as DecodedFrame & RescaledFrame);
    else p.resolve((response.colourSpace ? { pixels: response.pixels, colourSpace: response.colourSpace } : { pixels: response.pixels }) as DecodedFrame & RescaledFrame);
    this.dispatch();
  }

  private failed(pooled: PooledWorker, message: string): void {
    for (const [id, p] of this.pending) {
      if (p.worker !== pooled) continue;
      this.pending.delete(id);
      p.reject(new DecodeError('WORKER_FAILED', message));
    }
    pooled.busy = 0;
    this.dispatch();
  }
}

function defaultSize(): number {
  const cores = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 2;
  return Math.max(1, Math.min(4, cores));
}

/** Only the fields a decoder reads go to the worker (LUTs and per-frame attributes stay here). */
function plainInstance(i: DecodeInstance): DecodeInstance {
  return {
    rows: i.rows, columns: i.columns, bitsAllocated: i.bitsAllocated, bitsStored: i.bitsStored, highBit: i.highBit,
    pixelRepresentation: i.pixelRepresentation, samplesPerPixel: i.samplesPerPixel, photometricInterpretation: i.photometricInterpretation,
    planarConfiguration: i.planarConfiguration, transferSyntaxUid: i.transferSyntaxUid, bigEndian: i.bigEndian, encapsulated: i.encapsulated,
  };
}
