// Chunk buffers are reused once given back, never while handed out, and never grow past the limit;
// small chunks get buffers of their own size, not a whole pooled one.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChunkBuffers } from '../server/transport/chunk-buffers.js';

describe('chunk buffers', () => {
  it('hands a given-back buffer out again, and a fresh one while it is out', () => {
    const pool = new ChunkBuffers(1024, 2);
    const a = pool.take(300);
    const b = pool.take(1000);
    assert.notEqual(a.buffer, b.buffer, 'two buffers out at once are distinct');
    assert.equal(a.length, 300);
    pool.give(a);
    const c = pool.take(500);
    assert.equal(c.buffer, a.buffer, 'reused after give');
    assert.equal(c.length, 500);
  });

  it('does not pool buffers larger than its capacity, nor more than its limit', () => {
    const pool = new ChunkBuffers(1024, 1);
    const big = pool.take(4096);
    assert.equal(big.length, 4096);
    pool.give(big);
    assert.notEqual(pool.take(200).buffer, big.buffer);
    const x = pool.take(200);
    const y = pool.take(200);
    pool.give(x);
    pool.give(y);
    const again = [pool.take(200).buffer, pool.take(200).buffer];
    assert.equal(again.filter((buf) => buf === x.buffer || buf === y.buffer).length, 1, 'only one kept');
  });

  it('gives a small chunk a buffer of its own size, which is not pooled', () => {
    const pool = new ChunkBuffers(1024, 4);
    const small = pool.take(100);
    assert.equal(small.length, 100);
    assert.notEqual(small.buffer.byteLength, 1024, 'not a whole pooled buffer');
    pool.give(small);
    assert.notEqual(pool.take(500).buffer, small.buffer);
  });
});
