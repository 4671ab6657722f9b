// Reads of one object merged into GETs: adjacent or close reads of one version in one run, far
// ones, other objects and other versions apart, and no run longer than its bound.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MERGE_GAP, readRuns, type RangeRead } from '../server/archive/read-runs.js';

const spans = (reads: RangeRead[], maxRun?: number) => readRuns(reads, maxRun).map((r) => [r.key, r.start, r.end, r.reads.length]);

describe('read runs', () => {
  it('merges adjacent and close reads of one object version, in any order', () => {
    // Frames end to end, and fragments 8 bytes (an item header) apart, asked for out of order.
    const reads = [{ key: 'a', offset: 200, length: 100 }, { key: 'a', offset: 0, length: 100 }, { key: 'a', offset: 100, length: 100 }, { key: 'a', offset: 308, length: 50 }];
    assert.deepEqual(spans(reads), [['a', 0, 358, 4]]);
    assert.deepEqual(readRuns(reads)[0]!.reads.map((r) => r.offset), [0, 100, 200, 308], 'in file order');
  });

  it('keeps far reads, other objects and other versions in runs of their own', () => {
    assert.deepEqual(spans([{ key: 'a', offset: 0, length: 10 }, { key: 'a', offset: 10 + MERGE_GAP + 1, length: 10 }]), [['a', 0, 10, 1], ['a', 10 + MERGE_GAP + 1, 20 + MERGE_GAP + 1, 1]]);
    assert.deepEqual(spans([{ key: 'b', offset: 10, length: 10 }, { key: 'a', offset: 0, length: 10 }]), [['a', 0, 10, 1], ['b', 10, 20, 1]]);
    assert.deepEqual(spans([{ key: 'a', etag: '"1"', offset: 0, length: 10 }, { key: 'a', etag: '"2"', offset: 10, length: 10 }]).length, 2);
  });

  it('splits a run at its bound, and merges overlapping reads', () => {
    const frames = Array.from({ length: 10 }, (_, i) => ({ key: 'a', offset: i * 100, length: 100 }));
    assert.deepEqual(spans(frames, 400), [['a', 0, 400, 4], ['a', 400, 800, 4], ['a', 800, 1000, 2]]);
    assert.deepEqual(spans([{ key: 'a', offset: 0, length: 100 }, { key: 'a', offset: 50, length: 20 }]), [['a', 0, 100, 2]]);
  });
});
