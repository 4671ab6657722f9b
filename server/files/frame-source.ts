// Where frame bytes come from: pooled file handles confined to the served folder, positional
// reads, and the shared frame cache with its policy. Frames go through the cache (read once
// however many clients want them, the next frames of each group read ahead) when they are in it,
// being read, or fit without evicting anything; otherwise, and for frames over a quarter of it,
// the chunk is read straight from the file, so a series larger than the cache streams without
// churning it (scan resistance).
import { realpathSync } from 'node:fs';
import type { FrameLocation } from '../index/frame-table.js';
import { readHead as readHeadOf, type IndexedFile } from '../index/index-file.js';
import type { ParsedHead } from '../index/read-dataset.js';
import { pipeFile, readHead } from './file-reads.js';
import { FrameBuffers, type FrameBufferStats } from './frame-buffers.js';
import { FrameCache, keyOf, type FrameCacheStats } from './frame-cache.js';
import { FramesAhead, type FramesAheadStats } from './frames-ahead.js';
import { FrameReader } from './frame-reader.js';
import { HandlePool, type HandlePoolStats } from './handle-pool.js';
import type { S3Archive } from '../archive/s3.js';

/** Free frame buffers kept for reuse: a frame in flight for each of 16 clients of a 512×512 CT. */
const FREE_FRAME_BUFFER_BYTES = 8 * 1024 * 1024;

/** Frames read ahead past the cache and not yet asked for, at most: a few for each of 4 viewers. */
const FRAMES_AHEAD_BYTES = 8 * 1024 * 1024;

export interface WholeFrameStats { buffers: FrameBufferStats; ahead: FramesAheadStats }

/** A whole frame read past the cache, and the requests using it now. */
interface Shared { users: number; read: Promise<Uint8Array> }

/** A frame to read: its file, where it lies, and its 0-based index in the file. */
export interface FrameAt {
  file: IndexedFile;
  location: FrameLocation;
  frameIndex: number;
}

export interface FrameSourceOptions {
  /** The served folder: files are opened only inside its real path unless `followSymlinks`. */
  root: string;
  followSymlinks: boolean;
  maxOpenFiles: number;
  frameCacheBytes: number;
  readConcurrency: number;
  /** Frames read ahead per group, beyond the one being sent. */
  readahead: number;
  /** The served files are this store's objects, not a folder's. */
  archive?: S3Archive;
}

export class FrameSource {
  private readonly pool: HandlePool;
  private readonly archive: S3Archive | undefined;
  private readonly reader: FrameReader;
  private readonly cache: FrameCache;
  /** Buffers of whole frames read past the cache, reused once written. */
  private readonly buffers = new FrameBuffers(FREE_FRAME_BUFFER_BYTES);
  /** Whole frames read ahead past the cache, for frame(). */
  private readonly ahead: FramesAhead;
  /** Frames read ahead per group. */
  readonly readahead: number;
  /**
   * Whole frames read past the cache that requests are using now, by key: a request that wants
   * one of them shares its buffer (clients streaming the same series share each read). The
   * buffer goes back to the pool when the last of them recycles it.
   */
  private readonly sharing = new Map<string, Shared>();
  private readonly sharedBuffers = new WeakMap<ArrayBufferLike, { key: string; shared: Shared }>();

  constructor(options: FrameSourceOptions) {
    this.archive = options.archive;
    this.pool = new HandlePool({ maxOpen: options.maxOpenFiles, confineTo: options.followSymlinks || options.archive ? undefined : realpathSync(options.root) });
    this.reader = new FrameReader({ pool: this.pool, archive: options.archive });
    this.cache = new FrameCache({ reader: this.reader, maxBytes: options.frameCacheBytes, readConcurrency: options.readConcurrency });
    this.readahead = options.readahead;
    this.ahead = new FramesAhead({ maxBytes: FRAMES_AHEAD_BYTES, read: (frame) => this.readWhole(frame), recycle: (bytes) => this.buffers.give(bytes) });
  }

  /** Open handles, and opens/closes so far. */
  get files(): HandlePoolStats { return this.pool.stats; }
  /** Frame cache counters: hits, misses, evictions, bytes, reads, coalesced, prefetched. */
  get cacheStats(): FrameCacheStats { return this.cache.stats; }
  /** Whole frames read past the cache (DICOMweb): their buffers, and the frames read ahead. */
  get wholeFrameStats(): WholeFrameStats { return { buffers: this.buffers.stats, ahead: this.ahead.stats }; }

  /**
   * Copies `length` bytes of `frame` from frame offset `offset` into `into` at `at`; `next` are the
   * frames its group sends after it (read ahead when they fit the cache).
   */
  async readChunk(frame: FrameAt, offset: number, length: number, into: Uint8Array, at: number, next: readonly FrameAt[]): Promise<void> {
    this.prefetch(next);
    if (!this.viaCache(frame)) return this.reader.read(frame.file, frame.location, offset, length, into, at);
    const bytes = await this.cache.get(frame.file, frame.frameIndex);
    into.set(bytes.subarray(offset, offset + length), at);
  }

  /**
   * A whole frame: the cache's own bytes when it goes through the cache (no copy: the caller must
   * not modify them), else a pooled buffer read from the file. Give them to recycle() once the
   * socket has written them (or not at all). `next` as for readChunk.
   */
  async frame(frame: FrameAt, next: readonly FrameAt[]): Promise<Uint8Array> {
    // The next frames go to the cache when they fit it, else are read ahead past it.
    const past = new Set(next.filter((n) => !this.viaCache(n)));
    this.prefetch(next.filter((n) => !past.has(n)));
    for (const n of past) this.ahead.start(n);
    if (this.viaCache(frame)) return this.cache.get(frame.file, frame.frameIndex);
    const key = keyOf(frame.file, frame.frameIndex);
    const current = this.sharing.get(key);
    if (current) {
      current.users++;
      return current.read;
    }
    const shared: Shared = { users: 1, read: this.readPast(frame) };
    this.sharing.set(key, shared);
    shared.read.then(
      (bytes) => this.sharedBuffers.set(bytes.buffer, { key, shared }),
      // A failed read is not shared with later requests: they read again (and get their own error).
      () => { if (this.sharing.get(key) === shared) this.sharing.delete(key); },
    );
    return shared.read;
  }

  /** A frame read past the cache: read ahead for it, or read now. */
  private async readPast(frame: FrameAt): Promise<Uint8Array> {
    const ahead = this.ahead.take(frame);
    if (ahead) {
      try {
        return await ahead;
      } catch {
        // Read again below: its error, if it recurs, is this request's.
      }
    }
    return this.readWhole(frame);
  }

  /** A whole frame read straight from its file into a pooled buffer. */
  private async readWhole(frame: FrameAt): Promise<Uint8Array> {
    const bytes = this.buffers.take(frame.location.length);
    // On failure the buffer is left to the garbage collector: a read may still be writing into it.
    await this.reader.read(frame.file, frame.location, 0, frame.location.length, bytes, 0);
    return bytes;
  }

  /** Bytes from frame() that this request no longer reads: reused once no request does, when they were read past the cache. */
  recycle(bytes: Uint8Array): void {
    const owner = this.sharedBuffers.get(bytes.buffer);
    if (owner) {
      if (--owner.shared.users > 0) return;
      this.sharedBuffers.delete(bytes.buffer);
      if (this.sharing.get(owner.key) === owner.shared) this.sharing.delete(owner.key);
    }
    this.buffers.give(bytes);
  }

  /** The frames a group sends next, read ahead when they fit the cache. */
  private prefetch(next: readonly FrameAt[]): void {
    if (this.archive) return this.prefetchRuns(next);
    for (const n of next) if (n.location.length <= this.cache.maxFrameBytes) this.cache.prefetch(n.file, n.frameIndex);
  }

  /**
   * Read ahead from a store: the frames of each object as one read (adjacent ones come in one GET);
   * within one multi-frame object, only once half of them are missing, so that a group moving one
   * frame at a time still reads several at once rather than one GET a frame. Frames of different
   * objects cannot share a GET: they are read ahead at once, as from files.
   */
  private prefetchRuns(next: readonly FrameAt[]): void {
    const missing = next.filter((n) => n.location.length <= this.cache.maxFrameBytes && !this.cache.has(n.file, n.frameIndex) && !this.cache.isLoading(n.file, n.frameIndex));
    if (missing.length === 0) return;
    const oneObject = next.every((n) => n.file === next[0]!.file);
    if (oneObject && missing[0] !== next[0] && missing.length * 2 < next.length) return;
    for (let i = 0; i < missing.length;) {
      const file = missing[i]!.file;
      let j = i;
      while (j < missing.length && missing[j]!.file === file) j++;
      this.cache.prefetchRun(file, missing.slice(i, j).map((n) => n.frameIndex));
      i = j;
    }
  }

  /** Whether a frame goes through the cache: in it, being read, or fitting without evicting (scan resistance). */
  private viaCache(frame: FrameAt): boolean {
    const cache = this.cache;
    return frame.location.length <= cache.maxFrameBytes &&
      (cache.has(frame.file, frame.frameIndex) || cache.isLoading(frame.file, frame.frameIndex) || cache.fits(frame.location.length));
  }

  /** The file's data set before Pixel Data (DICOMweb metadata and bulk data). */
  head(file: IndexedFile): Promise<ParsedHead> {
    if (this.archive) return readHeadOf(this.archive.source(file.path, file.size, file.etag));
    return readHead(this.pool, file);
  }

  /** The whole stored file, chunk by chunk, each written before the next is read. */
  pipeFile(file: IndexedFile, write: (chunk: Uint8Array) => Promise<void>): Promise<void> {
    if (this.archive) return this.archive.pipe(file.path, write, file.etag);
    return pipeFile(this.pool, file, write);
  }

  /** A file was replaced or deleted: its open handle (of the old file) must not serve reads. */
  forget(path: string): void {
    this.pool.forget(path);
    this.ahead.forget(path);
  }

  close(): Promise<void> {
    return this.reader.close();
  }
}
