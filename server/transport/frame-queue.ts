// The frame requests of one connection, in the order their chunks go out: higher priority first,
// then the older request; within a request, frames in the order asked. The next chunk is chosen
// afresh at every chunk boundary, so a new urgent request overtakes a long frame in flight.
import type { FrameLocation } from '../index/frame-table.js';
import type { IndexedFile } from '../index/index-file.js';

export interface QueuedFrame {
  file: IndexedFile;
  location: FrameLocation;
  sopInstanceUid: string;
  frameNumber: number;
  /** Bytes of this frame sent so far. */
  sent: number;
}

export interface FrameRequest {
  id: number;
  priority: number;
  seq: number;
  frames: QueuedFrame[];
  /** Index of the frame being sent. */
  next: number;
  framesSent: number;
  framesFailed: number;
}

export class FrameQueue {
  private readonly requests: FrameRequest[] = [];
  private readonly byId = new Map<number, FrameRequest>();
  private seq = 0;

  get size(): number { return this.requests.length; }

  has(id: number): boolean { return this.byId.has(id); }

  add(id: number, priority: number, frames: QueuedFrame[], framesFailed: number): FrameRequest {
    const request: FrameRequest = { id, priority, seq: this.seq++, frames, next: 0, framesSent: 0, framesFailed };
    // Insert after every request of higher or equal priority (stable: older first).
    let i = this.requests.length;
    while (i > 0 && this.requests[i - 1]!.priority < priority) i--;
    this.requests.splice(i, 0, request);
    this.byId.set(id, request);
    return request;
  }

  /** The request whose chunk goes next. */
  peek(): FrameRequest | undefined {
    return this.requests[0];
  }

  remove(id: number): FrameRequest | undefined {
    const request = this.byId.get(id);
    if (!request) return undefined;
    this.byId.delete(id);
    this.requests.splice(this.requests.indexOf(request), 1);
    return request;
  }

  clear(): void {
    this.requests.length = 0;
    this.byId.clear();
  }
}
