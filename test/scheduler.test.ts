// The scheduler's order, chunk by chunk: outward from the focus, re-ordered when it moves,
// priorities, weighted round-robin shares, cancel at chunk boundaries, and the flow-control window.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Scheduler, type Chunk } from '../server/transport/scheduler.js';

type F = string;
const always = () => true;

/** Takes chunks until none is left (or `limit`), completing each at once. */
function drain(s: Scheduler<F>, limit = 100_000, ready: (c: number) => boolean = always): Chunk<F>[] {
  const out: Chunk<F>[] = [];
  while (out.length < limit) {
    const c = s.next(ready);
    if (!c) break;
    out.push(c);
    s.done(c);
  }
  return out;
}
const frames = (requestId: number, names: string[], length = 100) => names.map((frame, position) => ({ requestId, position, frame, length }));
const firstChunks = (chunks: Chunk<F>[]) => chunks.filter((c) => c.offset === 0).map((c) => c.item.frame);

describe('scheduler', () => {
  it('sends a group outward from its focus: p, p+1, p-1, p+2, …', () => {
    const s = new Scheduler<F>({ chunkBytes: 100 });
    s.addClient(1);
    s.enqueue(1, 7, frames(1, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']), { focus: 4 });
    assert.deepEqual(firstChunks(drain(s)), ['4', '5', '3', '6', '2', '7', '1', '8', '0', '9']);
  });

  it('re-orders what is still queued when the focus moves', () => {
    const s = new Scheduler<F>({ chunkBytes: 100 });
    s.addClient(1);
    s.enqueue(1, 7, frames(1, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']), { focus: 0 });
    const first = drain(s, 2).map((c) => c.item.frame);
    s.updateGroup(1, 7, { focus: 7 });
    assert.deepEqual([...first, ...firstChunks(drain(s))], ['0', '1', '7', '8', '6', '9', '5', '4', '3', '2']);
  });

  it('without a focus, keeps the order asked', () => {
    const s = new Scheduler<F>({ chunkBytes: 100 });
    s.addClient(1);
    s.enqueue(1, -1, frames(1, ['c', 'a', 'b']));
    assert.deepEqual(firstChunks(drain(s)), ['c', 'a', 'b']);
  });

  it('serves the higher-priority group first, taking over at the next chunk boundary', () => {
    const s = new Scheduler<F>({ chunkBytes: 10 });
    s.addClient(1);
    s.enqueue(1, 1, frames(1, ['big'], 100), { priority: 0 });
    const started = drain(s, 3);
    s.enqueue(1, 2, frames(2, ['urgent'], 20), { priority: 10 });
    const rest = drain(s);
    assert.deepEqual(started.map((c) => c.item.frame), ['big', 'big', 'big']);
    assert.deepEqual(rest.slice(0, 2).map((c) => c.item.frame), ['urgent', 'urgent']);
    assert.equal(rest.filter((c) => c.item.frame === 'big').length, 7, 'the big frame resumes where it stopped');
    assert.deepEqual(rest.filter((c) => c.item.frame === 'big').map((c) => c.offset), [30, 40, 50, 60, 70, 80, 90]);
  });

  it('alternates chunk by chunk: a huge frame never holds a small one behind it', () => {
    const s = new Scheduler<F>({ chunkBytes: 256 });
    s.addClient(1);
    s.addClient(2);
    s.enqueue(1, 1, frames(1, ['mammogram'], 30 * 1024 * 1024));
    s.enqueue(2, 1, frames(2, ['ct1', 'ct2', 'ct3'], 512 * 1024));
    const chunks = drain(s);
    const ctDone = chunks.findIndex((c) => c.item.frame === 'ct3' && c.last);
    const ctChunks = (3 * 512 * 1024) / 256;
    assert.ok(ctDone < ctChunks * 2 + 2, `the CT slices finished after ${ctDone} chunks (${ctChunks} of their own)`);
  });

  it('shares chunks by weight between clients, and between a client\'s groups, within ±5%', () => {
    const s = new Scheduler<F>({ chunkBytes: 1 });
    s.addClient(1, { weight: 1 });
    s.addClient(2, { weight: 3 });
    s.enqueue(1, 1, frames(1, ['a'], 1e6));
    s.enqueue(2, 1, frames(2, ['b'], 1e6), { weight: 1 });
    s.enqueue(2, 2, frames(3, ['c'], 1e6), { weight: 2 });
    const chunks = drain(s, 12_000);
    const share = (f: string) => chunks.filter((c) => c.item.frame === f).length / chunks.length;
    const near = (got: number, want: number) => assert.ok(Math.abs(got - want) <= want * 0.05, `${got} vs ${want}`);
    near(share('a'), 1 / 4);
    near(share('b'), (3 / 4) * (1 / 3));
    near(share('c'), (3 / 4) * (2 / 3));
  });

  it('cancels a request at the next chunk boundary, and a whole group', () => {
    const s = new Scheduler<F>({ chunkBytes: 10 });
    s.addClient(1);
    s.enqueue(1, 1, frames(1, ['x', 'y'], 100));
    s.enqueue(1, 1, frames(2, ['z'], 100));
    const first = drain(s, 3);
    const cancelled = s.cancelRequest(1, 1);
    assert.deepEqual(cancelled.dropped.map((i) => i.frame).sort(), ['x', 'y']);
    assert.equal(s.hasRequest(1, 1), false);
    const rest = drain(s);
    assert.deepEqual([...new Set(rest.map((c) => c.item.frame))], ['z'], 'nothing more of the cancelled request');
    assert.equal(first.length + rest.length, 3 + 10);
    s.enqueue(1, 5, frames(3, ['p', 'q']));
    s.enqueue(1, 5, frames(4, ['r']));
    const group = s.cancelGroup(1, 5);
    assert.deepEqual(group.requests.sort(), [3, 4]);
    assert.equal(s.next(always), undefined);
  });

  it('never sends past the window the client granted', () => {
    const s = new Scheduler<F>({ chunkBytes: 4096 });
    s.addClient(1, { window: 10_000 });
    s.enqueue(1, 1, frames(1, ['a', 'b', 'c'], 50_000));
    let sent = 0;
    let granted = 10_000;
    for (let round = 0; round < 20; round++) {
      for (const c of drain(s)) sent += c.length;
      assert.ok(sent <= granted, `sent ${sent} of ${granted} granted`);
      assert.equal(s.window(1), granted - sent);
      s.grant(1, 7_000);
      granted += 7_000;
    }
    for (const c of drain(s)) sent += c.length;
    assert.ok(sent <= granted);
  });

  it('holds a frame\'s next chunk until the previous one is done, serving other groups meanwhile', () => {
    const s = new Scheduler<F>({ chunkBytes: 10 });
    s.addClient(1);
    s.enqueue(1, 1, frames(1, ['a'], 30));
    s.enqueue(1, 2, frames(2, ['b'], 30));
    const c1 = s.next(always)!;
    const c2 = s.next(always)!;
    assert.notEqual(c1.item.frame, c2.item.frame);
    assert.equal(s.next(always), undefined, 'both frames busy');
    s.done(c1);
    assert.equal(s.next(always)!.item.frame, c1.item.frame);
  });

  it('skips clients whose socket is full', () => {
    const s = new Scheduler<F>({ chunkBytes: 10 });
    s.addClient(1);
    s.addClient(2);
    s.enqueue(1, 1, frames(1, ['a'], 100));
    s.enqueue(2, 1, frames(2, ['b'], 100));
    const chunks = drain(s, 1000, (c) => c === 2);
    assert.deepEqual([...new Set(chunks.map((c) => c.item.frame))], ['b']);
  });

  it('reports a request finished when its last frame is done, failed frames included', () => {
    const s = new Scheduler<F>({ chunkBytes: 100 });
    s.addClient(1);
    s.enqueue(1, -9, frames(9, ['a', 'b']));
    const a = s.next(always)!;
    assert.deepEqual(s.done(a, true), [], 'a failed, b remains');
    const b = s.next(always)!;
    assert.deepEqual(s.done(b), [9]);
    assert.equal(s.openRequests(1), 0);
  });
});
