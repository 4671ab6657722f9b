// Progressive loading of a series' frames: the frame on screen first, then outward from it
// (p, p+1, p-1, p+2, …). Moving the focus re-orders what is still to come: the focused frame is
// asked for at once with high priority, and the rest is re-requested in the new order (the old
// request is cancelled), so scrolling never waits behind frames nobody looks at any more.
import type { ImageAttributes, SeriesManifest } from '../shared/protocol.js';
import type { DicomStreamClient } from './client.js';
import type { Frame, FrameStream } from './frame-stream.js';

export interface StackFrame {
  /** Position in the stack (0-based): instances in manifest order, each instance's frames in order. */
  index: number;
  instance: ImageAttributes;
  sopInstanceUid: string;
  frameNumber: number;
}

export interface SeriesLoaderOptions {
  onFrame?: (ref: StackFrame, frame: Frame) => void;
  onProgress?: (loaded: number, total: number) => void;
  /** Priority of the bulk request; the focused frame goes at this + 10. */
  priority?: number;
  /** Delay before re-ordering the bulk request after the focus moves (scrolling moves it often). */
  reorderDelayMs?: number;
}

/** p, p+1, p-1, p+2, p-2, … within 0..count-1. */
export function outwardOrder(focus: number, count: number): number[] {
  const order: number[] = [];
  if (count <= 0) return order;
  const p = Math.min(Math.max(0, focus), count - 1);
  order.push(p);
  for (let d = 1; order.length < count; d++) {
    if (p + d < count) order.push(p + d);
    if (p - d >= 0) order.push(p - d);
  }
  return order;
}

export class SeriesLoader {
  readonly frames: StackFrame[];
  private readonly loadedFrames = new Map<number, Frame>();
  private readonly byAddress = new Map<string, StackFrame>();
  private bulk: FrameStream | undefined;
  private urgent: FrameStream | undefined;
  private focus = 0;
  private reorderTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor(private readonly client: DicomStreamClient, readonly series: SeriesManifest, private readonly options: SeriesLoaderOptions = {}) {
    this.frames = [];
    for (const instance of series.instances) {
      for (let n = 1; n <= Math.max(1, instance.numberOfFrames); n++) {
        const ref = { index: this.frames.length, instance, sopInstanceUid: instance.sopInstanceUid, frameNumber: n };
        this.frames.push(ref);
        this.byAddress.set(`${ref.sopInstanceUid}\u0000${n}`, ref);
      }
    }
  }

  get total(): number { return this.frames.length; }
  get loaded(): number { return this.loadedFrames.size; }

  /** The frame at a stack position, once it has arrived. */
  frame(index: number): Frame | undefined {
    return this.loadedFrames.get(index);
  }

  /**
   * Starts loading outward from `index`. With `prefetch: false` only that frame is asked for;
   * `prefetch()` then asks for the rest (a viewer can let its first image paint before the
   * series streams in beside it).
   */
  start(index = 0, options: { prefetch?: boolean } = {}): void {
    this.focus = index;
    if (options.prefetch === false) {
      const ref = this.frames[index];
      if (ref) this.urgent = this.request([ref], (this.options.priority ?? 0) + 10);
      return;
    }
    this.requestBulk();
  }

  /** Asks for every frame not loaded yet, outward from the focus. */
  prefetch(): void {
    this.requestBulk();
  }

  /** The frame on screen changed: it comes next, and the rest re-orders around it. */
  setFocus(index: number): void {
    if (this.closed || index === this.focus) return;
    this.focus = index;
    if (!this.loadedFrames.has(index)) {
      void this.urgent?.cancel();
      const ref = this.frames[index];
      if (ref) this.urgent = this.request([ref], (this.options.priority ?? 0) + 10);
    }
    clearTimeout(this.reorderTimer);
    this.reorderTimer = setTimeout(() => this.requestBulk(), this.options.reorderDelayMs ?? 60);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.reorderTimer);
    void this.bulk?.cancel();
    void this.urgent?.cancel();
  }

  private requestBulk(): void {
    if (this.closed) return;
    const previous = this.bulk;
    const missing = outwardOrder(this.focus, this.frames.length).filter((i) => !this.loadedFrames.has(i)).map((i) => this.frames[i]!);
    this.bulk = missing.length ? this.request(missing, this.options.priority ?? 0) : undefined;
    // Cancelled after the new request is queued, so the connection never idles in between.
    void previous?.cancel();
  }

  private request(refs: StackFrame[], priority: number): FrameStream {
    return this.client.requestFrames(refs.map((r) => ({ sopInstanceUid: r.sopInstanceUid, frameNumber: r.frameNumber })), {
      priority,
      onFrame: (frame) => this.arrived(frame),
    });
  }

  private arrived(frame: Frame): void {
    const ref = this.byAddress.get(`${frame.sopInstanceUid}\u0000${frame.frameNumber}`);
    if (!ref || this.loadedFrames.has(ref.index) || this.closed) return;
    this.loadedFrames.set(ref.index, frame);
    this.options.onFrame?.(ref, frame);
    this.options.onProgress?.(this.loadedFrames.size, this.frames.length);
  }
}
