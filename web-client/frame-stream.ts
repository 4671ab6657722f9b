// The frames of one request as they arrive: an async iterator, callbacks, and a promise of the
// request's end. Frame errors do not end the stream; they are collected and reported.
import type { ProtocolError } from '../shared/protocol.js';
import type { AssembledFrame } from './frame-assembler.js';

export type Frame = AssembledFrame;

export interface RequestSummary {
  requestId: number;
  framesSent: number;
  framesFailed: number;
  cancelled: boolean;
  /** One per frame that failed, with the server's code and the frame it names. */
  errors: ProtocolError[];
}

/**
 * Called with each frame as it arrives. A returned promise (a decode, say) keeps the frame in the
 * client's backlog until it settles: a consumer that falls behind holds the server back.
 */
export type FrameCallback = (frame: Frame) => void | Promise<unknown>;

export class FrameStream implements AsyncIterable<Frame> {
  readonly requestId: number;
  /** Resolves when the server has finished the request (all frames sent or failed, or cancelled). */
  readonly done: Promise<RequestSummary>;
  private readonly buffered: Frame[] = [];
  private readonly waiting: Array<(r: IteratorResult<Frame>) => void> = [];
  private readonly failures: Array<(e: unknown) => void> = [];
  private readonly errors: ProtocolError[] = [];
  private finished = false;
  /** Frames are kept for an iterator only once one asked: a callback-only caller keeps nothing here. */
  private iterating = false;
  private failure: unknown;
  private resolveDone!: (s: RequestSummary) => void;
  private rejectDone!: (e: unknown) => void;

  constructor(
    requestId: number,
    private readonly cancelRequest: (id: number) => void,
    private readonly onFrame?: FrameCallback,
    private readonly onError?: (e: ProtocolError) => void,
    /**
     * Told when the consumer is done with a frame, with its size as it arrived (flow control gives
     * its bytes back then; by then a decode may have transferred the buffer away).
     */
    private readonly consumed?: (bytes: number) => void,
  ) {
    this.requestId = requestId;
    this.done = new Promise((resolve, reject) => { this.resolveDone = resolve; this.rejectDone = reject; });
    // A caller that only iterates must not see an unhandled rejection from `done`.
    this.done.catch(() => undefined);
  }

  /** Stops the request: frames not yet received will not come. Resolves with the summary. */
  cancel(): Promise<RequestSummary> {
    if (!this.finished) this.cancelRequest(this.requestId);
    return this.done;
  }

  /** @internal */
  pushFrame(frame: Frame): void {
    const size = frame.bytes.length;
    if (this.onFrame) {
      // The callback is the consumer; an iterator beside it only gets a copy of the list.
      const result = this.onFrame(frame);
      if (result instanceof Promise) result.then(() => this.consumed?.(size), () => this.consumed?.(size));
      else this.consumed?.(size);
    }
    const waiter = this.waiting.shift();
    if (waiter) {
      this.failures.shift();
      if (!this.onFrame) this.consumed?.(size);
      waiter({ value: frame, done: false });
    } else if (this.iterating || !this.onFrame) {
      this.buffered.push(frame); // without a callback, held (against the window) until iterated
    }
  }

  /** @internal */
  pushError(error: ProtocolError): void {
    this.errors.push(error);
    this.onError?.(error);
  }

  /** @internal */
  finish(summary: Omit<RequestSummary, 'errors'>): void {
    if (this.finished) return;
    this.finished = true;
    this.resolveDone({ ...summary, errors: this.errors });
    for (const w of this.waiting.splice(0)) w({ value: undefined, done: true });
    this.failures.length = 0;
  }

  /** @internal: the connection failed. */
  fail(error: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.failure = error;
    this.rejectDone(error);
    this.waiting.length = 0;
    for (const f of this.failures.splice(0)) f(error);
  }

  [Symbol.asyncIterator](): AsyncIterator<Frame> {
    this.iterating = true;
    return {
      next: () => {
        const frame = this.buffered.shift();
        if (frame) {
          if (!this.onFrame) this.consumed?.(frame.bytes.length);
          return Promise.resolve({ value: frame, done: false });
        }
        if (this.failure !== undefined) return Promise.reject(this.failure);
        if (this.finished) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => { this.waiting.push(resolve); this.failures.push(reject); });
      },
      return: () => {
        // Leaving a for-await loop early cancels what is left, and lets go of what was kept for it.
        if (!this.finished) this.cancelRequest(this.requestId);
        for (const frame of this.buffered.splice(0)) if (!this.onFrame) this.consumed?.(frame.bytes.length);
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
