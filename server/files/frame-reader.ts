// Reads a piece of a frame's bytes, as stored, straight into the caller's buffer: from the file
// with positional reads on pooled handles, or from the inflated copy of a deflated file.
import { readFile } from 'node:fs/promises';
import { LRUCache } from 'lru-cache';
import type { FrameLocation } from '../index/frame-table.js';
import type { IndexedFile } from '../index/index-file.js';
import { readDataSet } from '../index/read-dataset.js';
import { HandlePool } from './handle-pool.js';
import type { S3Archive } from '../archive/s3.js';
import { CodedError } from '../../shared/coded-error.js';

export interface FrameReaderOptions {
  pool?: HandlePool;
  /** Files whose path is below this archive's root (`s3://…`) are its objects, read with ranged GETs. */
  archive?: S3Archive;
  /** Bytes of inflated data sets kept for deflated files. */
  inflatedCacheBytes?: number;
}

export class FrameReader {
  readonly pool: HandlePool;
  readonly archive: S3Archive | undefined;
  private readonly inflated: LRUCache<string, Uint8Array>;

  constructor(options: FrameReaderOptions = {}) {
    this.pool = options.pool ?? new HandlePool();
    this.archive = options.archive;
    this.inflated = new LRUCache<string, Uint8Array>({
      maxSize: options.inflatedCacheBytes ?? 64 * 1024 * 1024,
      sizeCalculation: (b) => Math.max(1, b.byteLength),
      // Concurrent reads of one deflated file inflate it once.
      fetchMethod: async (path) => readDataSet(await this.wholeFile(path), true).bytes,
    });
  }

  /**
   * Copies `length` bytes of `frame` from frame offset `offset` into `into` at `at`.
   * Rejects when the file is gone or shorter than the index says.
   */
  async read(file: IndexedFile, frame: FrameLocation, offset: number, length: number, into: Uint8Array, at: number): Promise<void> {
    const pieces = slices(frame, offset, length);
    if (file.source === 'inflated') {
      const bytes = await this.inflated.fetch(file.path);
      if (!bytes) throw new CodedError('FILE_CHANGED', 'deflated file could not be read');
      let to = at;
      for (const [start, n] of pieces) {
        if (start + n > bytes.length) throw new CodedError('FILE_CHANGED', 'file is shorter than its index');
        into.set(bytes.subarray(start, start + n), to);
        to += n;
      }
      return;
    }
    if (this.archive) {
      // Asked for together: the store answers a frame's fragments with one GET (read-runs.ts).
      let to = at;
      const reads = pieces.map(([start, n]) => this.archive!.read(file.path, start, n, into, (to += n) - n, file.etag));
      // Every piece settled before the caller hears: none may still write into its buffer after a failure.
      const failed = (await Promise.allSettled(reads)).find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      return;
    }
    // The handle may be of an older file at that path (replaced since it was opened): then it is
    // dropped and the path opened again, once.
    for (let attempt = 0; ; attempt++) {
      const stale = await this.pool.with(file.path, async (handle, opened) => {
        if (opened.size !== file.size || opened.mtimeMs !== file.mtimeMs) return true;
        let to = at;
        for (const [start, n] of pieces) {
          let done = 0;
          while (done < n) {
            const { bytesRead } = await handle.read(into, to + done, n - done, start + done);
            if (bytesRead === 0) throw new CodedError('FILE_CHANGED', 'file is shorter than its index (changed or truncated)');
            done += bytesRead;
          }
          to += n;
        }
        return false;
      });
      if (!stale) return;
      // The path names another file than the one indexed: its byte ranges would be wrong.
      if (attempt > 0) throw new CodedError('FILE_CHANGED', 'the file changed since it was indexed');
      this.pool.forget(file.path);
    }
  }

  /** A whole file's bytes (a deflated file is inflated whole). */
  private async wholeFile(path: string): Promise<Uint8Array> {
    if (!this.archive) return readFile(await this.pool.confined(path));
    const parts: Uint8Array[] = [];
    await this.archive.pipe(path, async (chunk) => { parts.push(chunk); });
    return Buffer.concat(parts);
  }

  async close(): Promise<void> {
    this.archive?.close();
    this.inflated.clear();
    await this.pool.close();
  }
}

/** The file ranges [start, length] holding bytes offset..offset+length of a frame. */
export function slices(frame: FrameLocation, offset: number, length: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let skip = offset;
  let left = length;
  const s = frame.segments;
  for (let i = 0; i < s.length && left > 0; i += 2) {
    const segStart = s[i]!;
    const segLength = s[i + 1]!;
    if (skip >= segLength) { skip -= segLength; continue; }
    const n = Math.min(segLength - skip, left);
    out.push([segStart + skip, n]);
    left -= n;
    skip = 0;
  }
  if (left > 0) throw new RangeError(`frame has ${frame.length} bytes, asked for ${offset + length}`);
  return out;
}
