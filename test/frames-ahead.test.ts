// Frames read ahead past the cache: each is handed to one taker, the oldest are pushed out (and
// their buffers recycled once read) when the byte budget is full, a changed file's are dropped.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FrameAt } from '../server/files/frame-source.js';
import { FramesAhead } from '../server/files/frames-ahead.js';
import type { IndexedFile } from '../server/index.js';

const frameOf = (path: string, length: number): FrameAt => ({
  file: { path, size: 1000, mtimeMs: 1, frames: [] } as unknown as IndexedFile,
  location: { segments: [0, length], length, bitOffset: 0 },
  frameIndex: 0,
});

function store(maxBytes: number) {
  const reads: string[] = [];
  const recycled: Uint8Array[] = [];
  const ahead = new FramesAhead({
    maxBytes,
    read: async (f) => { reads.push(f.file.path); return new Uint8Array(f.location.length); },
    recycle: (b) => recycled.push(b),
  });
  return { ahead, reads, recycled };
}

describe('frames read ahead', () => {
  it('hands a frame read ahead to one taker only, and reads it once however often it is started', async () => {
    const { ahead, reads } = store(1000);
    const a = frameOf('a', 100);
    ahead.start(a);
    ahead.start(a);
    assert.deepEqual(reads, ['a']);
    const taken = ahead.take(a);
    assert.ok(taken);
    assert.equal((await taken).length, 100);
    assert.equal(ahead.take(a), undefined, 'gone once taken');
    assert.deepEqual(ahead.stats, { started: 1, taken: 1, dropped: 0 });
  });

  it('pushes the oldest out when the budget is full and recycles its buffer once read', async () => {
    const { ahead, recycled } = store(250);
    for (const p of ['a', 'b', 'c']) ahead.start(frameOf(p, 100));
    assert.equal(ahead.take(frameOf('a', 100)), undefined, 'the oldest was pushed out');
    assert.ok(ahead.take(frameOf('b', 100)));
    assert.ok(ahead.take(frameOf('c', 100)));
    await new Promise((r) => setImmediate(r));
    assert.equal(recycled.length, 1);
    assert.equal(recycled[0]!.length, 100);
    ahead.start(frameOf('huge', 300));
    assert.equal(ahead.take(frameOf('huge', 300)), undefined, 'a frame above the whole budget is not read ahead');
  });

  it('drops the frames of a file that changed', () => {
    const { ahead } = store(1000);
    ahead.start(frameOf('a', 10));
    ahead.start(frameOf('b', 10));
    ahead.forget('a');
    assert.equal(ahead.take(frameOf('a', 10)), undefined);
    assert.ok(ahead.take(frameOf('b', 10)));
    assert.equal(ahead.stats.dropped, 1);
  });
});
