// Parses DICOM files into index entries on worker threads (both cores for a cold index), or in
// this thread when no workers are asked for. Each worker keeps a few files in flight, so its
// disk waits overlap its parsing.
import { Worker } from 'node:worker_threads';
import { IndexError, type IndexErrorCode } from './index-error.js';
import { indexFile, type IndexedFile } from './index-file.js';

export interface ParseReply { id: number; file?: IndexedFile; error?: { code: IndexErrorCode; message: string } }


const IN_FLIGHT_PER_WORKER = 32;
/** Files parsed at once in this thread (asynchronous reads overlap). */
const LOCAL_IN_FLIGHT = 8;

export class ParsePool {
  /** Files parsed so far, successfully or not (by any worker, or in this thread). */
  parsed = 0;
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve: (f: IndexedFile) => void; reject: (e: Error) => void }>();
  private readonly queue: Array<{ id: number; path: string }> = [];
  private readonly inFlight: number[] = [];
  private readonly owner = new Map<number, number>();
  private nextId = 1;
  private local = 0;
  /** Why a worker died, if one did. */
  failure: Error | undefined;
  private readonly paths = new Map<number, string>();
  private dead = 0;
  private readonly localQueue: Array<() => void> = [];

  /**
   * `workers` 0: parse in this thread (at most 8 files at once). Workers start on the first parse
   * sent to them and stop on `idle()`.
   */
  constructor(private readonly workerCount = 0) {}

  /** Parses one file; `here`: in this thread (a few files are not worth starting threads for). */
  parse(path: string, here = false): Promise<IndexedFile> {
    if (here || this.workerCount === 0) return this.parseHere(path);
    if (this.workers.length === 0) this.start();
    const id = this.nextId++;
    const done = new Promise<IndexedFile>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.queue.push({ id, path });
    this.dispatch();
    return done;
  }

  private start(): void {
    const ts = import.meta.url.endsWith('.ts');
    for (let i = 0; i < this.workerCount; i++) {
      // From sources (tests, tools run with tsx), the worker registers tsx's loader first.
      const worker = ts
        ? new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL('./parse-worker.ts', import.meta.url).href)}); })`, { eval: true })
        : new Worker(new URL('./parse-worker.js', import.meta.url));
      worker.on('message', (reply: ParseReply) => this.settle(i, reply));
      worker.on('error', (e) => this.failWorker(i, e));
      this.workers.push(worker);
      this.inFlight.push(0);
    }
  }

  /** Stops the worker threads once nothing is waiting for them (they start again when needed). */
  async idle(): Promise<void> {
    if (this.pending.size === 0) await this.close();
  }

  async close(): Promise<void> {
    const workers = this.workers.splice(0);
    this.inFlight.length = 0;
    this.dead = 0;
    this.owner.clear();
    await Promise.all(workers.map((w) => w.terminate()));
    for (const p of this.pending.values()) p.reject(new Error('parse pool closed'));
    this.pending.clear();
  }

  private async parseHere(path: string): Promise<IndexedFile> {
    if (this.local >= LOCAL_IN_FLIGHT) await new Promise<void>((r) => this.localQueue.push(r));
    this.local++;
    try {
      return await indexFile(path);
    } finally {
      this.parsed++;
      this.local--;
      this.localQueue.shift()?.();
    }
  }

  private dispatch(): void {
    if (this.dead === this.workers.length && this.workers.length > 0) {
      // No worker left: parse what waits in this thread.
      for (const job of this.queue.splice(0)) {
        const p = this.pending.get(job.id);
        this.pending.delete(job.id);
        this.parseHere(job.path).then((f) => p?.resolve(f), (e: Error) => p?.reject(e));
      }
      return;
    }
    while (this.queue.length) {
      // The least busy worker, if any has room.
      let best = -1;
      for (let i = 0; i < this.workers.length; i++) {
        if (this.inFlight[i]! < IN_FLIGHT_PER_WORKER && (best < 0 || this.inFlight[i]! < this.inFlight[best]!)) best = i;
      }
      if (best < 0) return;
      const job = this.queue.shift()!;
      this.inFlight[best]!++;
      this.owner.set(job.id, best);
      this.paths.set(job.id, job.path);
      this.workers[best]!.postMessage(job);
    }
  }

  private settle(worker: number, reply: ParseReply): void {
    this.inFlight[worker]!--;
    this.owner.delete(reply.id);
    this.paths.delete(reply.id);
    const p = this.pending.get(reply.id);
    this.pending.delete(reply.id);
    this.parsed++;
    if (p) {
      if (reply.file) {
        p.resolve(reply.file);
      } else {
        p.reject(new IndexError(reply.error?.code ?? 'CORRUPT', reply.error?.message ?? 'parse failed'));
      }
    }
    this.dispatch();
  }

  /** A worker died (it should not: parse errors are replies): its files are parsed here instead. */
  private failWorker(worker: number, error: Error): void {
    this.failure = error;
    for (const [id, owner] of this.owner) {
      if (owner !== worker) continue;
      this.owner.delete(id);
      const p = this.pending.get(id);
      this.pending.delete(id);
      const path = this.paths.get(id);
      this.paths.delete(id);
      if (p && path !== undefined) this.parseHere(path).then(p.resolve, p.reject);
    }
    this.inFlight[worker] = Infinity; // never chosen again
    this.dead++;
    this.dispatch();
  }
}
