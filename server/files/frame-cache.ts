// Whole frames' bytes, as stored, shared by all sessions: read from disk once however many
// viewers ask at once, kept in an LRU bounded in bytes, and read ahead on request while the
// budget has room. Disk reads go through one bounded queue where waiting viewers come before
// readahead, so reads in flight are at most `readConcurrency` tasks (a run read ahead is one task,
// its frames within the budget) besides the cache.
import { LRUCache } from 'lru-cache';
import type { FrameLocation } from '../index/frame-table.js';
import type { IndexedFile } from '../index/index-file.js';
import type { FrameReader } from './frame-reader.js';
import { ReadLimiter, type LimitedTask } from './read-limiter.js';
import { DEFAULTS } from '../options.js';
import { allocFrame } from './headroom.js';
import { CodedError } from '../../shared/coded-error.js';

/** What the cache needs of a FrameReader (tests wrap one to watch or hold its reads). */
export type ByteReader = Pick<FrameReader, 'read'>;

export interface FrameCacheOptions {
  /** Bytes of frames kept at most (default: `--frame-cache`'s). */
  maxBytes?: number;
  /** Disk reads running at once, across all callers. Default 4. */
  readConcurrency?: number;
  reader: ByteReader;
}

export interface FrameCacheStats {
  /** get() answered from the cache. */
  hits: number;
  /** get() not answered from the cache (read, or joined a read under way). */
  misses: number;
  /** Frames pushed out of the cache to make room. */
  evictions: number;
  /** Bytes of frames in the cache now (never above maxBytes). */
  bytes: number;
  /** Frames read from the reader. */
  reads: number;
  /** get() that joined a read already under way (its own or a prefetch's) instead of reading. */
  coalesced: number;
  /** prefetch() calls that queued a read. */
  prefetched: number;
  /** Queued prefetches dropped because get()s filled the budget before their turn came. */
  prefetchDropped: number;
}


/** A frame being read (or waiting for its turn to be). */
interface Loading {
  /** Only prefetch() wants it: it may be dropped rather than evict anything. */
  prefetchOnly: boolean;
  /** Bytes it will add to the cache when it lands (0 when too big to keep). */
  bytes: number;
  /** The read; undefined when a prefetch was dropped (nobody waits for it then). */
  task: LimitedTask<Uint8Array | undefined>;
}

type Counters = Omit<FrameCacheStats, 'bytes'>;

export class FrameCache {
  readonly maxBytes: number;
  /** Frames above this are read but not kept: one frame must not flush the cache. */
  readonly maxFrameBytes: number;
  private readonly reader: ByteReader;
  private readonly limiter: ReadLimiter;
  private readonly cache: LRUCache<string, Uint8Array>;
  private readonly loading = new Map<string, Loading>();
  /** Bytes the frames in `loading` will add to the cache. */
  private loadingBytes = 0;
  /** Bumped by clear(): reads begun before it do not land in the cache. */
  private generation = 0;
  private readonly counters: Counters = { hits: 0, misses: 0, evictions: 0, reads: 0, coalesced: 0, prefetched: 0, prefetchDropped: 0 };

  constructor(options: FrameCacheOptions) {
    this.maxBytes = options.maxBytes ?? DEFAULTS.frameCache;
    if (!Number.isSafeInteger(this.maxBytes) || this.maxBytes < 1) throw new CodedError('BAD_OPTION', `frame cache size must be a positive integer, not ${this.maxBytes}`);
    this.maxFrameBytes = Math.floor(this.maxBytes / 4);
    this.reader = options.reader;
    this.limiter = new ReadLimiter(options.readConcurrency ?? DEFAULTS.readConcurrency);
    this.cache = new LRUCache<string, Uint8Array>({
      maxSize: this.maxBytes,
      // lru-cache wants sizes ≥ 1; an empty frame counts as one byte.
      sizeCalculation: (bytes) => Math.max(1, bytes.byteLength),
      dispose: (_bytes, _key, reason) => { if (reason === 'evict') this.counters.evictions++; },
    });
  }

  get stats(): FrameCacheStats {
    return { ...this.counters, bytes: this.cache.calculatedSize };
  }

  /**
   * Frame `frameIndex` (0-based: file.frames[frameIndex]) of `file`, whole, as stored. Concurrent
   * calls for one frame share one read. The bytes are shared with other callers and the cache:
   * copy from them, never write into them. Rejects like FrameReader.read when the file is gone or
   * shorter than its index (a failed read is not remembered: the next call tries again).
   */
  async get(file: IndexedFile, frameIndex: number): Promise<Uint8Array> {
    const location = frameOf(file, frameIndex);
    const key = keyOf(file, frameIndex);
    const cached = this.cache.get(key);
    if (cached) {
      this.counters.hits++;
      return cached;
    }
    this.counters.misses++;
    const loading = this.loading.get(key);
    if (loading) {
      this.counters.coalesced++;
      // Someone waits for it now: it is kept whatever the budget, and no longer waits behind readahead.
      loading.prefetchOnly = false;
      loading.task.promote();
    }
    const bytes = await (loading ?? this.load(file, location, key, false)).task.done;
    // Only a prefetch nobody waited for is ever dropped; should that change, read it after all.
    return bytes ?? this.get(file, frameIndex);
  }

  /**
   * Queues a read of a frame the caller expects to be asked for soon, without waiting for it.
   * Does nothing (returns false) when the frame is cached or being read, too big to keep, or
   * when cached plus loading bytes leave no room for it: readahead never evicts. Errors are
   * swallowed; a later get() reports them.
   */
  prefetch(file: IndexedFile, frameIndex: number): boolean {
    const location = file.frames[frameIndex];
    if (!location) return false;
    const key = keyOf(file, frameIndex);
    if (this.cache.has(key) || this.loading.has(key)) return false;
    if (location.length > this.maxFrameBytes) return false;
    if (this.cache.calculatedSize + this.loadingBytes + location.length > this.maxBytes) return false;
    this.counters.prefetched++;
    this.load(file, location, key, true).task.done.catch(() => undefined);
    return true;
  }

  /**
   * prefetch() for several frames of one file as one queued read: their reads are asked for
   * together, so that a store answers a run of adjacent frames with one GET. Frames cached, being
   * read, too big, or past the room left are left out. Returns how many were queued.
   */
  prefetchRun(file: IndexedFile, frameIndexes: readonly number[]): number {
    const chosen: Array<{ location: FrameLocation; key: string }> = [];
    let room = this.maxBytes - this.cache.calculatedSize - this.loadingBytes;
    for (const frameIndex of new Set(frameIndexes)) {
      const location = file.frames[frameIndex];
      const key = keyOf(file, frameIndex);
      if (!location || this.cache.has(key) || this.loading.has(key) || location.length > this.maxFrameBytes) continue;
      if (location.length > room) break;
      room -= Math.max(1, location.length);
      chosen.push({ location, key });
    }
    if (chosen.length === 0) return 0;
    const generation = this.generation;
    const loadings: Loading[] = [];
    const run = this.limiter.add(() => Promise.allSettled(chosen.map((c, i) => this.read(file, c.location, c.key, loadings[i]!, generation))), false);
    chosen.forEach(({ location, key }, i) => {
      const done = run.done.then((results) => {
        const r = results[i]!;
        if (r.status === 'rejected') throw r.reason;
        return r.value;
      });
      done.catch(() => undefined); // a later get() reports it
      const loading: Loading = { prefetchOnly: true, bytes: Math.max(1, location.length), task: { done, promote: run.promote } };
      loadings.push(loading);
      this.loading.set(key, loading);
      this.loadingBytes += loading.bytes;
      this.counters.prefetched++;
    });
    return chosen.length;
  }

  /** Whether a frame is in the cache now (not counted as a hit, and not made more recent). */
  has(file: IndexedFile, frameIndex: number): boolean {
    return this.cache.has(keyOf(file, frameIndex));
  }

  /** Whether a frame is being read or waits to be. */
  isLoading(file: IndexedFile, frameIndex: number): boolean {
    return this.loading.has(keyOf(file, frameIndex));
  }

  /** Resolves once no read is queued or running (for tests and shutdown). */
  async idle(): Promise<void> {
    while (this.loading.size > 0) await Promise.allSettled([...this.loading.values()].map((l) => l.task.done));
  }

  /** Empties the cache; reads under way still answer their callers but are not kept. */
  clear(): void {
    this.generation++;
    this.cache.clear();
  }

  private load(file: IndexedFile, location: FrameLocation, key: string, prefetch: boolean): Loading {
    const bytes = location.length <= this.maxFrameBytes ? Math.max(1, location.length) : 0;
    const generation = this.generation;
    // The limiter runs the task a microtask later at the earliest, when `loading` is recorded.
    const loading: Loading = {
      prefetchOnly: prefetch,
      bytes,
      task: this.limiter.add(() => this.read(file, location, key, loading, generation), !prefetch),
    };
    this.loading.set(key, loading);
    this.loadingBytes += bytes;
    return loading;
  }

  /** Runs in a limiter slot. All bookkeeping happens here, so a later caller sees it at once. */
  private async read(file: IndexedFile, location: FrameLocation, key: string, loading: Loading, generation: number): Promise<Uint8Array | undefined> {
    try {
      // get()s that jumped the line may have filled the budget meanwhile: readahead never evicts.
      if (loading.prefetchOnly && !this.fits(location.length)) {
        this.counters.prefetchDropped++;
        return undefined;
      }
      this.counters.reads++;
      // Not zero-filled: the reader overwrites every byte or rejects. Room before it for a header (headroom.ts).
      const bytes = allocFrame(location.length);
      await this.reader.read(file, location, 0, location.length, bytes, 0);
      const keep = loading.bytes > 0 && generation === this.generation && (!loading.prefetchOnly || this.fits(location.length));
      if (keep) this.cache.set(key, bytes);
      else if (loading.prefetchOnly) this.counters.prefetchDropped++;
      return bytes;
    } finally {
      if (this.loading.get(key) === loading) this.loading.delete(key);
      this.loadingBytes -= loading.bytes;
    }
  }

  /** Whether `length` more bytes fit in the cache without evicting anything. */
  fits(length: number): boolean {
    return this.cache.calculatedSize + Math.max(1, length) <= this.maxBytes;
  }
}

function frameOf(file: IndexedFile, frameIndex: number): FrameLocation {
  const location = file.frames[frameIndex];
  if (!location) throw new RangeError(`${file.path} has ${file.frames.length} frame(s); frame index ${frameIndex} asked for`);
  return location;
}

/** Size and modification time are part of the key: a replaced file's old frames are never served. */
export function keyOf(file: IndexedFile, frameIndex: number): string {
  return `${file.path}\0${file.size}\0${file.mtimeMs}\0${frameIndex}`;
}
