// Cached frames sent without a copy: the header goes into the room before the frame, one message
// at a time per buffer; and through a real server, clients that want the same cached frames at the
// same time each get their own header and the right bytes.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { FrameBuffers } from '../server/files/frame-buffers.js';
import { allocFrame, HEADROOM_BYTES, withHeader } from '../server/files/headroom.js';
import { createLogger, startServer } from '../server/index.js';
import { connect } from '../web-client/index.js';
import { filesDir, manifest } from './helpers/corpus.js';

describe('frame headroom', () => {
  it('puts the header right before the frame, in the frame\'s own buffer, for one message at a time', () => {
    const frame = allocFrame(100_000);
    frame.fill(7);
    const header = Uint8Array.from([1, 2, 3]);
    const first = withHeader(frame, header);
    assert.ok(first);
    assert.equal(first.message.buffer, frame.buffer, 'a view of the frame\'s buffer, not a copy');
    assert.deepEqual(Array.from(first.message.subarray(0, 3)), [1, 2, 3]);
    assert.equal(first.message.length, 3 + frame.length);
    assert.ok(first.message.subarray(3).every((v) => v === 7));
    assert.equal(withHeader(frame, Uint8Array.from([9])), undefined, 'the room is taken until the first message is written');
    first.release();
    const second = withHeader(frame, Uint8Array.from([9]));
    assert.ok(second, 'free again once released');
    assert.equal(second.message[0], 9);
    assert.ok(second.message.subarray(1).every((v) => v === 7), 'the frame bytes are never written');
  });

  it('gives room to the reused buffers of frames read past the cache, reused or new', () => {
    const pool = new FrameBuffers(4 * 1024 * 1024);
    const first = pool.take(300_000);
    const viewed = withHeader(first, Uint8Array.from([5, 6]));
    assert.ok(viewed, 'a pooled buffer has room for the header');
    assert.equal(viewed.message.buffer, first.buffer);
    viewed.release();
    pool.give(first);
    const again = pool.take(290_000);
    assert.equal(again.buffer, first.buffer, 'the same buffer, reused for a frame of its class');
    assert.ok(withHeader(again, Uint8Array.from([7])), 'with its room');
  });

  it('gives no room to small frames, to buffers it did not allocate, or to headers larger than the room', () => {
    assert.equal(withHeader(allocFrame(1000), Uint8Array.from([1])), undefined);
    const foreign = new Uint8Array(new ArrayBuffer(200_000), HEADROOM_BYTES, 200_000 - HEADROOM_BYTES);
    assert.equal(withHeader(foreign, Uint8Array.from([1])), undefined);
    assert.equal(withHeader(allocFrame(100_000), new Uint8Array(HEADROOM_BYTES + 1)), undefined);
  });

  it('serves the same cached frames to several clients at once, each with its own request id and the right bytes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dicomstream-headroom-'));
    // A native frame of 128 KiB: large enough for headroom.
    const entry = manifest.files.find((m) => m.file === '0.dcm')!;
    copyFileSync(join(filesDir, entry.file), join(dir, entry.file));
    const server = await startServer({ root: dir, host: '127.0.0.1', port: 0, log: createLogger('silent'), indexDir: false });
    try {
      const clients = await Promise.all(Array.from({ length: 4 }, () => connect(server.url, { WebSocket })));
      const expected = (entry as unknown as { frames: Array<{ sha256: string; length: number }> }).frames[0]!.sha256;
      for (let round = 0; round < 3; round++) {
        const hashes = await Promise.all(clients.map(async (c) => {
          const got: string[] = [];
          for await (const f of c.requestFrames([{ sopInstanceUid: entry.sop_instance_uid!, frameNumber: 1 }])) got.push(createHash('sha256').update(f.bytes).digest('hex'));
          return got;
        }));
        for (const h of hashes) assert.deepEqual(h, [expected], `round ${round}: every client gets the stored frame`);
      }
      for (const c of clients) c.close();
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
