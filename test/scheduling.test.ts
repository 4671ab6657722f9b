// The scheduler at work over real sockets: a huge frame does not hold small ones behind it
// (between clients and between one client's groups); the window a client grants is never
// exceeded; focus moves re-order a group; a client that never reads costs a bounded amount while
// 20 others finish.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { DEFAULT_LIMITS } from '../server/index.js';
import { writeDicom, uidFromName } from '../server/sample/dicom-writer.js';
import type { DecodedServerMessage } from '../shared/protocol.js';
import { connect } from '../web-client/index.js';
import { RawClient, client, withServer } from './helpers/server.js';
import { waitFor } from './helpers/wait-for.js';

/** A native 16-bit image of rows × columns, pixels a simple ramp. */
function image(name: string, series: string, rows: number, columns: number, instanceNumber: number): Uint8Array {
  const pixels = new Uint8Array(rows * columns * 2);
  for (let i = 0; i < pixels.length; i += 2) pixels[i] = (i / 2 + instanceNumber) & 0xff;
  return writeDicom([
    { tag: 0x00080016, vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.7' }, { tag: 0x00080018, vr: 'UI', value: uidFromName(name) },
    { tag: 0x0020000d, vr: 'UI', value: uidFromName('scheduling study') }, { tag: 0x0020000e, vr: 'UI', value: uidFromName(series) },
    { tag: 0x00200013, vr: 'IS', value: instanceNumber },
    { tag: 0x00280002, vr: 'US', value: 1 }, { tag: 0x00280004, vr: 'CS', value: 'MONOCHROME2' },
    { tag: 0x00280010, vr: 'US', value: rows }, { tag: 0x00280011, vr: 'US', value: columns },
    { tag: 0x00280100, vr: 'US', value: 16 }, { tag: 0x00280101, vr: 'US', value: 16 }, { tag: 0x00280102, vr: 'US', value: 15 },
    { tag: 0x00280103, vr: 'US', value: 0 }, { tag: 0x7fe00010, vr: 'OW', value: pixels },
  ]);
}

describe('scheduling over loopback', () => {
  let dir = '';
  const huge = uidFromName('mammogram');
  const small = Array.from({ length: 10 }, (_, k) => uidFromName(`ct-${k}`));
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'dicomstream-scheduling-'));
    mkdirSync(join(dir, 'mg'));
    mkdirSync(join(dir, 'ct'));
    writeFileSync(join(dir, 'mg', 'mammogram.dcm'), image('mammogram', 'mg', 3328, 4096, 1)); // 27 MB
    small.forEach((_, k) => writeFileSync(join(dir, 'ct', `${k}.dcm`), image(`ct-${k}`, 'ct', 512, 512, k + 1)));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('does not hold small frames behind a huge one, between clients or between groups', async () => {
    await withServer({ root: dir }, async (server) => {
      const a = await client(server);
      const b = await client(server);
      try {
        const events: string[] = [];
        const hugeDone = a.getFrame(huge, 1).then((f) => { events.push('huge'); return f; });
        const smalls = b.requestFrames(small.map((sopInstanceUid) => ({ sopInstanceUid, frameNumber: 1 })), { onFrame: () => { events.push('small'); } });
        await smalls.done;
        events.push('smalls done');
        const mammogram = await hugeDone;
        assert.equal(mammogram.bytes.length, 3328 * 4096 * 2);
        assert.ok(events.indexOf('smalls done') < events.indexOf('huge'), `other client: ${events.join(' ')}`);

        // One client, two groups: the same.
        const order: string[] = [];
        const g1 = a.newGroup();
        const g2 = a.newGroup();
        const big = a.requestFrames([{ sopInstanceUid: huge, frameNumber: 1 }], { group: g1, onFrame: () => { order.push('huge'); } });
        const few = a.requestFrames(small.slice(0, 4).map((sopInstanceUid) => ({ sopInstanceUid, frameNumber: 1 })), { group: g2, onFrame: () => { order.push('small'); } });
        await Promise.all([big.done, few.done]);
        assert.deepEqual(order, ['small', 'small', 'small', 'small', 'huge']);
      } finally {
        a.close();
        b.close();
      }
    });
  });

  it('never sends more frame bytes than the client granted', async () => {
    await withServer({ root: dir, chunkSize: 4096 }, async (server) => {
      const raw = new RawClient(server.url);
      await raw.open(false);
      raw.send({ hello: { protocolVersion: 1, initialWindow: 10_000 } });
      assert.equal((await raw.next()).kind, 'welcome');
      raw.send({ requestFrames: { requestId: 1, frames: small.map((sopInstanceUid) => ({ sopInstanceUid, frameNumber: 1 })) } });
      // Read chunk by chunk; grant more only once the window is used up: had the server ignored
      // the window, `received` would pass `granted` before any grant.
      let received = 0;
      let granted = 10_000;
      const total = 10 * 512 * 512 * 2;
      const grants = [5000, 100_000, total];
      for (;;) {
        const m = await raw.next();
        if (m.kind === 'requestComplete') break;
        if (m.kind !== 'frameChunk') continue;
        received += m.payload.length;
        assert.ok(received <= granted, `${received} bytes received, ${granted} granted`);
        if (received === granted && grants.length) {
          const more = grants.shift()!;
          granted += more;
          raw.send({ windowUpdate: { bytes: more } });
        }
      }
      assert.equal(received, total, 'everything, once granted');
      assert.equal(grants.length, 0, 'the window was used up twice before the last grant');
      raw.close();
    });
  });

  it('re-orders a group when its focus moves', async () => {
    await withServer({ root: dir, chunkSize: 65536, maxBuffered: 65536 }, async (server) => {
      // A small window keeps little in flight (the kernel's socket buffers would hold megabytes):
      // what the focus move can re-order is most of the series.
      const c = await connect(server.url, { WebSocket, window: 256 * 1024 });
      try {
        const order: number[] = [];
        const group = c.newGroup({ focus: 0 });
        const stream = c.requestFrames(small.map((sopInstanceUid, position) => ({ sopInstanceUid, frameNumber: 1, position })), {
          group,
          onFrame: (f) => {
            order.push(small.indexOf(f.sopInstanceUid));
            if (order.length === 1) c.updateGroup(group, { focus: 8 });
          },
        });
        await stream.done;
        assert.equal(order[0], 0);
        // Frames already read or in flight when the focus moved may come first; then 8, 9, 7, 6, ….
        const at8 = order.indexOf(8);
        assert.ok(at8 <= 3, `frame 8 came ${at8}th`);
        assert.deepEqual(order.slice(at8, at8 + 3).filter((i) => i !== undefined), [8, 9, 7].filter((i) => !order.slice(0, at8).includes(i)).slice(0, 3));
      } finally {
        c.close();
      }
    });
  });

  it('bounds what a client that never reads costs, while 20 others finish', async () => {
    const maxBufferedBytes = 1024 * 1024;
    await withServer({ root: dir, maxBuffered: maxBufferedBytes }, async (server) => {
      const stalled = await new RawClient(server.url).open();
      (stalled.ws as WebSocket & { _socket: { pause(): void } })._socket.pause();
      const everything = [huge, ...small].map((sopInstanceUid) => ({ sopInstanceUid, frameNumber: 1 }));
      for (let id = 1; id <= 20; id++) stalled.send({ requestFrames: { requestId: id, frames: everything } });
      const heapBefore = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
      const others = await Promise.all(Array.from({ length: 20 }, () => client(server)));
      try {
        const results = await Promise.all(others.map(async (c) => {
          let bytes = 0;
          for await (const f of c.requestFrames(small.map((sopInstanceUid) => ({ sopInstanceUid, frameNumber: 1 })))) bytes += f.bytes.length;
          return bytes;
        }));
        for (const bytes of results) assert.equal(bytes, 10 * 512 * 512 * 2);
        // The stalled client got at most its bound queued in this process (plus one chunk).
        assert.ok(server.stats.maxBufferedBytes <= maxBufferedBytes + DEFAULT_LIMITS.chunkBytes + 16 * 1024,
          `at most ${server.stats.maxBufferedBytes} bytes held for one connection`);
        const stalledFramesAsked = 20 * everything.length;
        assert.ok(server.stats.framesSent < 20 * 10 + stalledFramesAsked / 2, 'the stalled client was not sent what it asked');
        const grown = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers - heapBefore;
        // 20 clients hold their 5 MB of frames each here (100 MB); the stalled one may add its bound, not 20 × 32 MB.
        assert.ok(grown < 100 * 1024 * 1024 + 64 * 1024 * 1024, `memory grew by ${(grown / 1048576).toFixed(0)} MiB`);
      } finally {
        stalled.ws.terminate();
        for (const c of others) c.close();
      }
    });
  });
});

describe('flow control from the client', () => {
  it('stops the server when the application does not take its frames, and resumes as it does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dicomstream-window-'));
    const uids = Array.from({ length: 12 }, (_, k) => uidFromName(`window-${k}`));
    uids.forEach((_, k) => writeFileSync(join(dir, `${k}.dcm`), image(`window-${k}`, 'window', 512, 512, k)));
    try {
      await withServer({ root: dir }, async (server) => {
        const window = 1024 * 1024;
        const backlog = 512 * 1024;
        const c = await connect(server.url, { WebSocket, window, backlog });
        try {
          const stream = c.requestFrames(uids.map((sopInstanceUid) => ({ sopInstanceUid, frameNumber: 1 })));
          // Nobody iterates: grants stop once a backlog of frames is waiting, and the server stops
          // a window later (3 frames of 512 KiB), not after all 12.
          await waitFor(() => server.stats.bytesSent >= window + backlog, 'the server to send the backlog budget plus the window');
          for (let i = 0; i < 5; i++) await c.listStudies();
          assert.equal(server.stats.bytesSent, window + backlog, 'the backlog budget plus the window, no more');
          // Taking the frames grants the window back; all twelve arrive.
          let n = 0;
          for await (const f of stream) { assert.equal(f.bytes.length, 512 * 512 * 2); n++; }
          assert.equal(n, 12);
          assert.equal(server.stats.bytesSent, 12 * 512 * 512 * 2);

          // A callback's promise (a decode, say) holds its frame in the backlog until it settles.
          const decodes: Array<() => void> = [];
          const before = server.stats.bytesSent;
          const decoded = c.requestFrames(uids.map((sopInstanceUid) => ({ sopInstanceUid, frameNumber: 1 })), {
            onFrame: () => new Promise<void>((resolve) => decodes.push(resolve)),
          });
          await waitFor(() => server.stats.bytesSent - before >= window + backlog, 'the server to send a window and a backlog of frames held by their callbacks');
          for (let i = 0; i < 5; i++) await c.listStudies();
          assert.equal(server.stats.bytesSent - before, window + backlog, 'pending decodes hold the server back');
          // Decodes finish as frames come: the rest streams in.
          const finishing = setInterval(() => decodes.splice(0).forEach((done) => done()), 5);
          await decoded.done.finally(() => clearInterval(finishing));
          assert.equal(server.stats.bytesSent - before, 12 * 512 * 512 * 2);
        } finally {
          c.close();
        }
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
