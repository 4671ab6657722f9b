// File handles: opened once for many reads, closed when idle, and a close never races a read.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { HandlePool } from '../server/files/handle-pool.js';

const dir = mkdtempSync(join(tmpdir(), 'dicomstream-pool-'));
const path = join(dir, 'f.bin');
writeFileSync(path, Buffer.from('0123456789'));

async function readAt(pool: HandlePool, offset: number): Promise<string> {
  return pool.with(path, async (h) => {
    const b = Buffer.alloc(2);
    await h.read(b, 0, 2, offset);
    return b.toString();
  });
}

describe('handle pool', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('opens a file once for many concurrent reads', async () => {
    const pool = new HandlePool({ idleMs: 60_000 });
    const got = await Promise.all(Array.from({ length: 50 }, (_, i) => readAt(pool, i % 9)));
    assert.equal(got[3], '34');
    assert.equal(pool.stats.opens, 1);
    await pool.close();
    assert.equal(pool.stats.closes, 1);
    assert.equal(pool.stats.open, 0);
  });

  it('closes idle handles and reopens on the next read', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval', 'Date'] }); // the idle sweep runs on a clock the test moves
    const pool = new HandlePool({ idleMs: 100 });
    await readAt(pool, 0);
    t.mock.timers.tick(50);
    await pool.settled();
    assert.equal(pool.stats.closes, 0, 'not idle long enough yet');
    t.mock.timers.tick(100);
    await pool.settled();
    assert.equal(pool.stats.closes, 1, 'closed when idle');
    assert.equal(await readAt(pool, 2), '23');
    assert.equal(pool.stats.opens, 2);
    await pool.close();
  });

  it('queues a close behind the reads using the handle, and a reopen behind the close', async () => {
    const pool = new HandlePool({ idleMs: 60_000 });
    const reads = Array.from({ length: 20 }, (_, i) => readAt(pool, i % 5));
    pool.forget(path);
    const after = readAt(pool, 8);
    assert.deepEqual((await Promise.all(reads)).slice(0, 5), ['01', '12', '23', '34', '45']);
    assert.equal(await after, '89');
    await pool.close();
    assert.equal(pool.stats.opens, 2);
    assert.equal(pool.stats.closes, 2);
    assert.equal(pool.stats.open, 0);
  });

  it('keeps at most maxOpen idle handles', async () => {
    const many = Array.from({ length: 6 }, (_, i) => { const p = join(dir, `m${i}`); writeFileSync(p, 'x'); return p; });
    const pool = new HandlePool({ maxOpen: 2, idleMs: 60_000 });
    for (const p of many) await pool.with(p, async () => undefined);
    await pool.settled();
    assert.deepEqual(pool.stats, { open: 2, opens: 6, closes: 4 });
    await pool.close();
    assert.equal(pool.stats.open, 0);
  });
});
