// Whole frames read ahead past the frame cache, each kept for the one request expected to take it
// (DICOMweb viewers fetch a stack one instance after the other). The frame cache's readahead never
// evicts, so once a series larger than the cache has filled it, the next frames would otherwise be
// read only when asked for, and every request would wait for its disk read. Bounded in bytes; a
// frame nobody took is pushed out by newer ones and its buffer recycled.
import type { FrameAt } from './frame-source.js';
import { keyOf } from './frame-cache.js';

export interface FramesAheadOptions {
  /** Bytes of frames read ahead and not taken yet, at most. */
  maxBytes: number;
  /** Reads a whole frame into a buffer of its own (pooled). */
  read: (frame: FrameAt) => Promise<Uint8Array>;
  /** Takes back the buffer of a frame nobody took. */
  recycle: (bytes: Uint8Array) => void;
}

export interface FramesAheadStats {
  /** Frames whose read ahead began. */
  started: number;
  /** Requests answered with a frame read ahead. */
  taken: number;
  /** Frames read ahead that nobody took, pushed out by newer ones or by a change of their file. */
  dropped: number;
}

interface Ahead { path: string; bytes: number; read: Promise<Uint8Array> }

export class FramesAhead {
  /** In the order the reads began: the first is the oldest. */
  private readonly frames = new Map<string, Ahead>();
  private bytes = 0;
  private readonly counters: FramesAheadStats = { started: 0, taken: 0, dropped: 0 };

  constructor(private readonly options: FramesAheadOptions) {}

  get stats(): FramesAheadStats {
    return { ...this.counters };
  }

  /** The frame's read, if it was read ahead: the caller owns its bytes from now on. */
  take(frame: FrameAt): Promise<Uint8Array> | undefined {
    const key = keyOf(frame.file, frame.frameIndex);
    const ahead = this.frames.get(key);
    if (!ahead) return undefined;
    this.remove(key, ahead);
    this.counters.taken++;
    return ahead.read;
  }

  /** Starts reading `frame` unless it is read ahead already or is larger than the whole budget. */
  start(frame: FrameAt): void {
    const key = keyOf(frame.file, frame.frameIndex);
    const length = frame.location.length;
    if (this.frames.has(key) || length > this.options.maxBytes) return;
    for (const [oldKey, old] of this.frames) {
      if (this.bytes + length <= this.options.maxBytes) break;
      this.drop(oldKey, old);
    }
    const read = this.options.read(frame);
    read.catch(() => undefined); // a failed read ahead is read again (and reported) when asked for
    const ahead = { path: frame.file.path, bytes: length, read };
    this.frames.set(key, ahead);
    this.bytes += length;
    this.counters.started++;
  }

  /** A file changed or went away: its frames read ahead are not served. */
  forget(path: string): void {
    for (const [key, ahead] of this.frames) if (ahead.path === path) this.drop(key, ahead);
  }

  private drop(key: string, ahead: Ahead): void {
    this.remove(key, ahead);
    this.counters.dropped++;
    // Recycled once read: the read may still be writing into the buffer.
    ahead.read.then(this.options.recycle, () => undefined);
  }

  private remove(key: string, ahead: Ahead): void {
    this.frames.delete(key);
    this.bytes -= ahead.bytes;
  }
}
