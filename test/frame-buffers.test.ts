// Whole-frame buffers are reused once given back and never while handed out; giving one twice, or
// giving bytes the pool did not make (a cached frame, a converted one), hands nothing out twice;
// sizes round up to a class at most 25 % larger; the free bytes stay within the bound.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FrameBuffers, sizeClass } from '../server/files/frame-buffers.js';

const KiB = 1024;

describe('frame buffers', () => {
  it('hands a given-back buffer out again for a frame of the same class, a fresh one while it is out', () => {
    const pool = new FrameBuffers(4 * 1024 * KiB);
    const a = pool.take(512 * KiB);
    const b = pool.take(512 * KiB);
    assert.notEqual(a.buffer, b.buffer, 'two buffers out at once are distinct');
    assert.equal(a.length, 512 * KiB);
    pool.give(a);
    const c = pool.take(500 * KiB);
    assert.equal(c.buffer, a.buffer, 'reused after give, for a frame of the same class');
    assert.equal(c.length, 500 * KiB);
    assert.deepEqual(pool.stats, { made: 2, reused: 1, heldBytes: 0 });
  });

  it('never hands one buffer out twice, however often it is given back', () => {
    const pool = new FrameBuffers(4 * 1024 * KiB);
    const a = pool.take(256 * KiB);
    pool.give(a);
    pool.give(a);
    pool.give(a.subarray(10));
    const x = pool.take(256 * KiB);
    const y = pool.take(256 * KiB);
    assert.equal(x.buffer, a.buffer);
    assert.notEqual(y.buffer, a.buffer, 'the second take gets a new buffer');
  });

  it('ignores bytes it did not make, and keeps small and huge frames out of the pool', () => {
    const pool = new FrameBuffers(64 * 1024 * KiB, 1024 * KiB);
    const foreign = new Uint8Array(512 * KiB);
    pool.give(foreign);
    assert.notEqual(pool.take(512 * KiB).buffer, foreign.buffer);
    const small = pool.take(1000);
    const huge = pool.take(2048 * KiB);
    assert.equal(small.length, 1000);
    assert.equal(huge.length, 2048 * KiB);
    pool.give(small);
    pool.give(huge);
    assert.equal(pool.stats.heldBytes, 0, 'neither is kept');
    assert.equal(pool.stats.made, 1, 'only the pooled size was made by the pool');
  });

  it('keeps at most maxFreeBytes of free buffers', () => {
    const pool = new FrameBuffers(1024 * KiB);
    const out = [pool.take(512 * KiB), pool.take(512 * KiB), pool.take(512 * KiB)];
    for (const b of out) pool.give(b);
    assert.equal(pool.stats.heldBytes, 1024 * KiB);
  });

  it('rounds sizes up to 1, 1.25, 1.5 or 1.75 times a power of two', () => {
    assert.equal(sizeClass(512 * KiB), 512 * KiB);
    assert.equal(sizeClass(512 * KiB + 1), 640 * KiB);
    assert.equal(sizeClass(700 * KiB), 768 * KiB);
    assert.equal(sizeClass(900 * KiB), 896 * KiB + 128 * KiB);
    for (const size of [65_536, 70_000, 131_073, 300_000, 5_000_001]) {
      const c = sizeClass(size);
      assert.ok(c >= size && c <= size * 1.25, `${size} -> ${c}`);
    }
  });
});
