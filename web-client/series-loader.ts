// Progressive loading of a series' frames: the frame on screen first, then outward from it
// (p, p+1, p-1, p+2, …). The series is one frame group on the connection: moving the focus tells
// the server, which re-orders what it still has queued at its next chunk, so scrolling never waits
// behind frames nobody looks at any more, and nothing is cancelled or sent twice.
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
  /** Each frame as it arrives; a returned promise (a decode) holds it in the client's backlog until it settles. */
  onFrame?: (ref: StackFrame, frame: Frame) => void | Promise<unknown>;
  onProgress?: (loaded: number, total: number) => void;
  /** The group's priority against other series on the connection. */
  priority?: number;
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
  /** The series' frame group on the connection: focus and priority are the server's to apply. */
  readonly group: number;
  private readonly loadedFrames = new Map<number, Frame>();
  private readonly byAddress = new Map<string, StackFrame>();
  /** Stack positions asked for (and not failed). */
  private readonly asked = new Set<number>();
  private readonly streams = new Set<FrameStream>();
  private focus = 0;
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
    this.group = client.newGroup({ priority: options.priority ?? 0 });
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
    this.client.updateGroup(this.group, { focus: index });
    if (options.prefetch === false) this.request([index]);
    else this.prefetch();
  }

  /** Asks for every frame not asked for yet; the server sends them outward from the focus. */
  prefetch(): void {
    this.request(outwardOrder(this.focus, this.frames.length));
  }

  /**
   * The frame on screen changed: the server re-orders what it still has queued for this series
   * around it (nothing is cancelled or asked again); a frame not asked for yet is asked for now.
   */
  setFocus(index: number): void {
    if (this.closed || index === this.focus) return;
    this.focus = index;
    this.client.updateGroup(this.group, { focus: index });
    if (!this.asked.has(index)) this.request([index]);
  }

  close(): void {
    this.closed = true;
    this.client.cancelGroup(this.group);
  }

  private request(indices: number[]): void {
    if (this.closed) return;
    const refs = indices.filter((i) => !this.asked.has(i) && !this.loadedFrames.has(i)).map((i) => this.frames[i]).filter((r): r is StackFrame => Boolean(r));
    if (!refs.length) return;
    for (const r of refs) this.asked.add(r.index);
    const stream = this.client.requestFrames(refs.map((r) => ({ sopInstanceUid: r.sopInstanceUid, frameNumber: r.frameNumber, position: r.index })), {
      group: this.group,
      priority: this.options.priority ?? 0,
      onFrame: (frame) => this.arrived(frame),
      // A frame that failed may be asked for again later (e.g. when the focus comes back to it).
      onError: (e) => {
        const ref = this.byAddress.get(`${e.sopInstanceUid}\u0000${e.frameNumber}`);
        if (ref) this.asked.delete(ref.index);
      },
    });
    this.streams.add(stream);
    void stream.done.finally(() => this.streams.delete(stream));
  }

  private arrived(frame: Frame): void | Promise<unknown> {
    const ref = this.byAddress.get(`${frame.sopInstanceUid}\u0000${frame.frameNumber}`);
    if (!ref || this.loadedFrames.has(ref.index) || this.closed) return;
    this.loadedFrames.set(ref.index, frame);
    const taken = this.options.onFrame?.(ref, frame);
    this.options.onProgress?.(this.loadedFrames.size, this.frames.length);
    return taken;
  }
}
