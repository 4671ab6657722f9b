// The shared frame cache: whole frames as stored, one read however many ask, a byte bound that
// holds at all times, readahead that never evicts, and disk reads in one bounded queue where
// waiting viewers come before readahead.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, truncateSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { indexFile, type FrameLocation, type IndexedFile } from '../server/index.js';
import { FrameCache, type ByteReader } from '../server/files/frame-cache.js';
import { FrameReader } from '../server/files/frame-reader.js';
import { uint16Bytes, writeDicom, type DicomElement } from '../server/sample/dicom-writer.js';
import { filesDir } from './helpers/corpus.js';
import { multiFrameElements } from './helpers/multi-frame.js';

const dir = mkdtempSync(join(tmpdir(), 'dicomstream-frame-cache-'));
const readers: FrameReader[] = [];

/** A FrameReader of its own: its handle pool holds no handle from another test. */
function newReader(): FrameReader {
  const reader = new FrameReader();
  readers.push(reader);
  return reader;
}

const SIDE = 64;
const FRAME_BYTES = SIDE * SIDE * 2; // 16-bit native frames

function elements(name: string, frames: number, pixelData: DicomElement['value'], bits: 8 | 16 = 16): DicomElement[] {
  const sopInstanceUid = `2.25.${name.length}${[...name].map((c) => c.charCodeAt(0)).join('')}`;
  return multiFrameElements({ sopInstanceUid, studyInstanceUid: '2.25.1', seriesInstanceUid: '2.25.2', frames, side: SIDE, pixelData, bits });
}

/** A native 16-bit file whose every frame differs (`seed` makes files differ too). */
async function nativeFile(name: string, frames: number, seed = 0): Promise<IndexedFile> {
  const pixels = new Uint16Array(frames * SIDE * SIDE);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 7 + seed * 131 + Math.floor(i / (SIDE * SIDE)) * 1009) & 0xffff;
  const path = join(dir, `${name}.dcm`);
  writeFileSync(path, writeDicom(elements(name, frames, uint16Bytes(pixels))));
  return indexFile(path);
}

/** An encapsulated file with fragments of different, some odd, lengths (one per frame). */
async function encapsulatedFile(name: string): Promise<IndexedFile> {
  const frames = [1001, 4, 30_000, 777, 2].map((n, f) => Uint8Array.from({ length: n }, (_, i) => (i * 13 + f * 29) & 0xff));
  for (const f of frames) if (f.length > 2) { f[0] = 0xff; f[1] = 0xd8; } // JPEG SOI, as a codestream would start
  const path = join(dir, `${name}.dcm`);
  writeFileSync(path, writeDicom(elements(name, frames.length, { frames }, 8), '1.2.840.10008.1.2.4.50'));
  return indexFile(path);
}

/** The frame read straight through a FrameReader, as the session reads it today. */
async function direct(reader: FrameReader, file: IndexedFile, index: number): Promise<Uint8Array> {
  const frame = file.frames[index]!;
  const out = new Uint8Array(frame.length);
  await reader.read(file, frame, 0, frame.length, out, 0);
  return out;
}

interface StartedRead {
  frame: number;
  release: () => void;
}

/**
 * Wraps a reader to count reads running at once and, when gated, to hold each read until the
 * test releases it: the test sees which reads started, in which order.
 */
class WatchedSource implements ByteReader {
  active = 0;
  maxActive = 0;
  readonly started: StartedRead[] = [];
  private wake: Array<() => void> = [];

  constructor(private readonly inner: ByteReader, private readonly gated: boolean, private readonly onRead?: () => void) {}

  async read(file: IndexedFile, frame: FrameLocation, offset: number, length: number, into: Uint8Array, at: number): Promise<void> {
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    this.onRead?.();
    try {
      let release = (): void => undefined;
      const gate = new Promise<void>((resolve) => { release = resolve; });
      this.started.push({ frame: file.frames.indexOf(frame), release });
      for (const wake of this.wake.splice(0)) wake();
      if (this.gated) await gate;
      await this.inner.read(file, frame, offset, length, into, at);
    } finally {
      this.active--;
    }
  }

  /** Resolves once `n` reads have started. */
  async startedAtLeast(n: number): Promise<void> {
    while (this.started.length < n) await new Promise<void>((resolve) => this.wake.push(resolve));
  }

  get order(): number[] { return this.started.map((s) => s.frame); }
}

/** Releases each held read as soon as it starts, until `count` reads have run. */
async function releaseInTurn(source: WatchedSource, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    await source.startedAtLeast(i + 1);
    source.started[i]!.release();
  }
}

describe('frame cache', () => {
  after(async () => {
    await Promise.all(readers.map((r) => r.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives each frame\'s bytes as stored: native, encapsulated and deflated files', async () => {
    const reader = newReader();
    const cache = new FrameCache({ reader });
    const files = [await nativeFile('native', 3), await encapsulatedFile('encapsulated'), await indexFile(join(filesDir, 'image_dfl.dcm'))];
    assert.equal(files[2]!.source, 'inflated');
    for (const file of files) {
      for (let i = 0; i < file.frames.length; i++) {
        const got = await cache.get(file, i);
        assert.equal(got.length, file.frames[i]!.length);
        assert.deepEqual(got, await direct(reader, file, i), `${file.path} frame ${i}`);
        assert.ok(cache.has(file, i));
      }
    }
    const frames = files.reduce((n, f) => n + f.frames.length, 0);
    assert.equal(cache.stats.reads, frames);
    assert.deepEqual(await cache.get(files[1]!, 2), await direct(reader, files[1]!, 2), 'a hit gives the same bytes');
    assert.equal(cache.stats.hits, 1);
    assert.equal(cache.stats.reads, frames, 'a hit reads nothing');
    await assert.rejects(cache.get(files[0]!, 3), RangeError);
  });

  it('reads a frame once for 50 concurrent get() calls', async () => {
    const reader = newReader();
    const file = await nativeFile('coalesce', 2);
    const cache = new FrameCache({ reader });
    const all = await Promise.all(Array.from({ length: 50 }, () => cache.get(file, 1)));
    const stats = cache.stats;
    assert.equal(stats.reads, 1);
    assert.equal(stats.coalesced, 49);
    assert.equal(stats.misses, 50);
    assert.ok(all.every((b) => b === all[0]), 'one buffer shared by all callers');
    assert.deepEqual(all[0], await direct(reader, file, 1));
    await cache.get(file, 1);
    assert.equal(cache.stats.hits, 1);
    assert.equal(cache.stats.reads, 1);
  });

  it('never holds more than maxBytes while many frames stream through, and counts evictions', async () => {
    const reader = newReader();
    const file = await nativeFile('stream', 64, 1);
    const maxBytes = 5 * FRAME_BYTES + 100;
    let cache = new FrameCache({ reader, maxBytes });
    for (let i = 0; i < 64; i++) {
      await cache.get(file, i);
      assert.ok(cache.stats.bytes <= maxBytes, `${cache.stats.bytes} bytes after frame ${i}`);
    }
    const kept = file.frames.filter((_, i) => cache.has(file, i)).length;
    assert.equal(kept, 5);
    assert.equal(cache.stats.bytes, 5 * FRAME_BYTES);
    assert.equal(cache.stats.evictions, 64 - kept);
    assert.deepEqual(file.frames.map((_, i) => cache.has(file, i)).lastIndexOf(false), 58, 'the least recently used went first');

    // The same, all at once: the bound holds at every read and every answer.
    const checked = (): void => assert.ok(cache.stats.bytes <= maxBytes, `${cache.stats.bytes} bytes`);
    const source = new WatchedSource(reader, false, checked);
    cache = new FrameCache({ reader: source, maxBytes, readConcurrency: 4 });
    const frames = await Promise.all(file.frames.map((_, i) => cache.get(file, i).then((b) => { checked(); return b; })));
    assert.deepEqual(frames[40], await direct(reader, file, 40));
    assert.equal(cache.stats.reads, 64);
    assert.equal(cache.stats.evictions, 59);
    assert.ok(source.maxActive <= 4);
  });

  it('reads frames larger than a quarter of the budget without keeping them', async () => {
    const reader = newReader();
    const file = await nativeFile('large', 2, 2);
    const cache = new FrameCache({ reader, maxBytes: 3 * FRAME_BYTES });
    assert.deepEqual(await cache.get(file, 0), await direct(reader, file, 0));
    assert.equal(cache.has(file, 0), false);
    assert.equal(cache.stats.bytes, 0);
    await cache.get(file, 0);
    assert.equal(cache.stats.reads, 2);
    assert.equal(cache.prefetch(file, 1), false, 'no readahead of what would not be kept');
  });

  it('prefetches within the budget without evicting, and get() after prefetch is a hit', async () => {
    const reader = newReader();
    const file = await nativeFile('prefetch', 64, 3);
    const maxBytes = 10 * FRAME_BYTES;
    const cache = new FrameCache({ reader, maxBytes });
    const queued = file.frames.map((_, i) => cache.prefetch(file, i));
    assert.equal(queued.filter(Boolean).length, 10, 'cached plus loading bytes stay within the budget');
    assert.equal(cache.prefetch(file, 0), false, 'already loading');
    await cache.idle();
    assert.equal(cache.stats.bytes, maxBytes);
    assert.equal(cache.stats.prefetched, 10);
    assert.equal(cache.stats.reads, 10);
    assert.equal(cache.stats.evictions, 0);
    assert.equal(cache.prefetch(file, 3), false, 'already cached');
    assert.equal(cache.prefetch(file, 20), false, 'no room: readahead does not evict');
    assert.equal(cache.prefetch(file, 64), false, 'no such frame');
    assert.equal(cache.stats.evictions, 0);

    assert.deepEqual(await cache.get(file, 7), await direct(reader, file, 7));
    assert.equal(cache.stats.hits, 1);
    assert.equal(cache.stats.misses, 0);
    assert.equal(cache.stats.reads, 10);
    // A viewer's get() does evict: it needs the frame now.
    await cache.get(file, 30);
    assert.equal(cache.stats.evictions, 1);
    assert.ok(cache.stats.bytes <= maxBytes);
  });

  it('drops a queued prefetch when get()s fill the budget before its turn', async () => {
    const file = await nativeFile('drop', 16, 4);
    const source = new WatchedSource(newReader(), true);
    const cache = new FrameCache({ reader: source, maxBytes: 4 * FRAME_BYTES + 4, readConcurrency: 1 });
    const first = cache.get(file, 0);
    assert.equal(cache.prefetch(file, 10), true, 'room when asked');
    const rest = [1, 2, 3].map((i) => cache.get(file, i));
    await releaseInTurn(source, 4);
    await Promise.all([first, ...rest]);
    await cache.idle();
    assert.deepEqual(source.order, [0, 1, 2, 3], 'the prefetch was never read');
    assert.equal(cache.has(file, 10), false);
    assert.equal(cache.stats.prefetchDropped, 1);
    assert.equal(cache.stats.evictions, 0);
  });

  it('never runs more than readConcurrency reads at once', async () => {
    const reader = newReader();
    const files = [await nativeFile('concurrency-a', 20, 5), await nativeFile('concurrency-b', 20, 6)];
    const source = new WatchedSource(reader, true);
    const cache = new FrameCache({ reader: source, readConcurrency: 3 });
    const gets = Array.from({ length: 30 }, (_, i) => cache.get(files[i % 2]!, Math.floor(i / 2)));
    for (let i = 0; i < 10; i++) cache.prefetch(files[i % 2]!, 15 + Math.floor(i / 2));
    const total = 40;
    for (let i = 0; i < total; i++) {
      const expected = Math.min(i + 3, total);
      await source.startedAtLeast(expected);
      assert.equal(source.started.length, expected, 'a read starts only when one ends');
      assert.ok(source.active <= 3, `${source.active} reads at once`);
      source.started[i]!.release();
    }
    const got = await Promise.all(gets);
    await cache.idle();
    assert.equal(source.maxActive, 3);
    assert.equal(source.active, 0);
    assert.equal(cache.stats.reads, total);
    assert.deepEqual(got[17], await direct(reader, files[1]!, 8));
  });

  it('lets get() overtake queued prefetches, and promotes a prefetch someone waits for', async () => {
    const file = await nativeFile('overtake', 12, 7);
    const source = new WatchedSource(newReader(), true);
    const cache = new FrameCache({ reader: source, readConcurrency: 1 });
    const first = cache.get(file, 0);
    for (let i = 1; i <= 5; i++) assert.equal(cache.prefetch(file, i), true);
    const urgent = cache.get(file, 9);
    const promoted = cache.get(file, 4); // joins the queued prefetch of frame 4
    await releaseInTurn(source, 7);
    await Promise.all([first, urgent, promoted]);
    await cache.idle();
    assert.deepEqual(source.order, [0, 9, 4, 1, 2, 3, 5]);
    assert.equal(cache.stats.coalesced, 1);
    assert.equal(cache.stats.reads, 7);
    assert.deepEqual(await cache.get(file, 5), await direct(newReader(), file, 5));
    assert.equal(cache.stats.hits, 1, 'the prefetched frame is a hit');
    assert.equal(cache.stats.reads, 7);
  });

  it('prefetchRun reads a run of frames in one queued read, within the budget; a get() joins and promotes it', async () => {
    const file = await nativeFile('run', 12, 8);
    const source = new WatchedSource(newReader(), true);
    const cache = new FrameCache({ reader: source, readConcurrency: 1, maxBytes: 6 * FRAME_BYTES });
    const first = cache.get(file, 0);
    assert.equal(cache.prefetchRun(file, [1, 2, 3, 4, 5, 6, 7]), 5, 'as many as fit beside the frame being read');
    assert.equal(cache.prefetchRun(file, [1, 2]), 0, 'already loading');
    const joined = cache.get(file, 3); // joins the run, and moves it before a later get()'s read
    const urgent = cache.get(file, 11);
    await source.startedAtLeast(1);
    source.started[0]!.release();
    // The run's five reads start together, in one slot of the queue (a store answers them with one GET).
    await source.startedAtLeast(6);
    assert.deepEqual(source.order, [0, 1, 2, 3, 4, 5]);
    assert.equal(source.active, 5);
    for (const s of source.started.slice(1)) s.release();
    await releaseInTurn(source, 7);
    const [got3] = await Promise.all([joined, first, urgent]);
    await cache.idle();
    assert.deepEqual(got3, await direct(newReader(), file, 3));
    assert.equal(source.order.at(-1), 11);
    assert.equal(cache.stats.coalesced, 1);
    assert.ok(cache.stats.bytes <= 6 * FRAME_BYTES);
    assert.equal(cache.has(file, 5), true, 'the run landed in the cache');
  });

  it('rejects clearly when the file is gone or shorter than its index, and tries again next time', async () => {
    const reader = newReader();
    const gone = await nativeFile('gone', 2, 8);
    unlinkSync(gone.path);
    const cache = new FrameCache({ reader });
    await assert.rejects(cache.get(gone, 0), (e: Error) => /ENOENT|no such file/.test(e.message) && e.message.includes(gone.path));
    await assert.rejects(cache.get(gone, 0), /ENOENT/);
    assert.equal(cache.stats.reads, 2, 'a failure is not remembered');
    assert.equal(cache.prefetch(gone, 1), true);
    await cache.idle(); // the prefetch's error is swallowed, not an unhandled rejection
    assert.equal(cache.has(gone, 1), false);
    assert.equal(cache.stats.bytes, 0);

    const short = await nativeFile('short', 4, 9);
    truncateSync(short.path, short.frames[2]!.segments[0]!);
    // A file that changed since it was indexed serves nothing from its old index.
    await assert.rejects(cache.get(short, 3), /changed since it was indexed/);
    await assert.rejects(cache.get(short, 1), /changed since it was indexed/);
  });

  it('does not serve a replaced file\'s old frames, and clear() empties the cache', async () => {
    const reader = newReader();
    const before = await nativeFile('replaced', 2, 10);
    const cache = new FrameCache({ reader });
    const old = await cache.get(before, 1);
    const now = await nativeFile('replaced', 2, 11); // same path and size, other pixels
    utimesSync(now.path, new Date(), new Date(before.mtimeMs + 5000));
    const after = await indexFile(now.path);
    assert.equal(after.size, before.size);
    const fresh = await cache.get(after, 1);
    assert.notDeepEqual(fresh, old);
    assert.deepEqual(fresh, await direct(reader, after, 1));
    assert.equal(cache.stats.reads, 2);

    cache.clear();
    assert.equal(cache.stats.bytes, 0);
    assert.equal(cache.has(after, 1), false);
    assert.equal(cache.stats.evictions, 0, 'clearing is not evicting');
  });
});
