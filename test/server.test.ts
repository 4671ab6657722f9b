// The server over loopback, through the client API: every frame of the corpus byte-exact, several
// clients at once, errors for bad requests, priority, cancel, chunking and a client that stops reading.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { ErrorCode, ProtocolError, type DicomStreamClient, type Frame } from '../web-client/index.js';
import { expectation, manifest, servedFrameHashes, sha256 } from './helpers/corpus.js';
import { RawClient, client, servedFiles, withServer } from './helpers/server.js';
import { waitFor } from './helpers/wait-for.js';

/** Every (instance, frame) the server offers, with the hashes any copy of that instance may match. */
async function allFrames(c: DicomStreamClient) {
  const wanted: Array<{ sopInstanceUid: string; frameNumber: number; hashes: Set<string> }> = [];
  const byUid = servedFrameHashes();
  const studies = await c.listStudies();
  for (const study of studies) {
    for (const s of study.series) {
      const series = await c.openSeries(s.seriesInstanceUid);
      assert.equal(series.instances.length, s.numberOfInstances);
      // The manifest carries its study: a viewer needs no study list for the patient and dates.
      assert.deepEqual(series.study, study);
      for (const instance of series.instances) {
        for (let n = 1; n <= instance.numberOfFrames; n++) {
          wanted.push({ sopInstanceUid: instance.sopInstanceUid, frameNumber: n, hashes: byUid.get(instance.sopInstanceUid)?.[n - 1] ?? new Set() });
        }
      }
    }
  }
  return { wanted, uids: byUid };
}

describe('server over loopback', () => {
  it('serves every frame of every corpus file byte-exact through getFrame', async () => {
    await withServer({}, async (server) => {
      const c = await client(server);
      try {
        const { wanted, uids } = await allFrames(c);
        const served = new Set(wanted.map((w) => w.sopInstanceUid));
        for (const uid of uids.keys()) assert.ok(served.has(uid), `instance ${uid} is served`);
        for (const w of wanted) {
          const frame = await c.getFrame(w.sopInstanceUid, w.frameNumber, { priority: 0 });
          assert.ok(w.hashes.has(sha256(frame.bytes)), `${w.sopInstanceUid}#${w.frameNumber} byte-exact`);
          assert.equal(frame.instance?.sopInstanceUid, w.sopInstanceUid);
        }
        assert.equal(wanted.length, server.catalogue.frameCount);
      } finally {
        c.close();
      }
    });
  });

  it('reports broken files and duplicate copies, and serves the rest', async () => {
    await withServer({}, async (server) => {
      const skippedNames = new Set(server.index.skipped.map((s) => s.path));
      for (const f of manifest.files) {
        if (expectation(f).outcome === 'skipped') assert.ok(skippedNames.has(f.file), `${f.file} reported as skipped`);
      }
      for (const s of server.index.skipped) assert.match(s.reason, /\w{4,}/);
      // The corpus holds one image in several transfer syntaxes under one SOP Instance UID: one copy is served.
      const uidCounts = new Map<string, number>();
      for (const f of manifest.files) if (expectation(f).outcome === 'served') uidCounts.set(f.sop_instance_uid!, (uidCounts.get(f.sop_instance_uid!) ?? 0) + 1);
      const extraCopies = [...uidCounts.values()].reduce((a, n) => a + n - 1, 0);
      assert.equal(server.catalogue.duplicates.length, extraCopies);
      assert.equal(server.catalogue.instanceCount, uidCounts.size);
    });
  });

  it('streams many frames to several clients at once, chunked small, byte-exact', async () => {
    await withServer({ chunkSize: 4096 }, async (server) => {
      const clients = await Promise.all([0, 1, 2, 3].map(() => client(server)));
      try {
        const { wanted } = await allFrames(clients[0]!);
        const results = await Promise.all(clients.map(async (c, k) => {
          // Each client asks in another order, so chunks of different frames interleave on the server.
          const order = k % 2 ? [...wanted].reverse() : wanted;
          const stream = c.requestFrames(order.map(({ sopInstanceUid, frameNumber }) => ({ sopInstanceUid, frameNumber })));
          const got: Frame[] = [];
          for await (const f of stream) got.push(f);
          return { got, summary: await stream.done, order };
        }));
        for (const { got, summary, order } of results) {
          assert.equal(summary.framesFailed, 0);
          assert.equal(got.length, order.length);
          got.forEach((f, i) => {
            assert.equal(f.sopInstanceUid, order[i]!.sopInstanceUid, 'frames arrive in the order asked');
            assert.ok(order[i]!.hashes.has(sha256(f.bytes)));
          });
        }
      } finally {
        for (const c of clients) c.close();
      }
    });
  });

  it('answers unknown UIDs and frame numbers with coded errors, and carries on', async () => {
    await withServer({}, async (server) => {
      const c = await client(server);
      try {
        await assert.rejects(c.getFrame('1.2.3.4.5.6.7.8.9', 1), (e: ProtocolError) => e.code === 'UNKNOWN_INSTANCE' && e.errorCode === ErrorCode.UNKNOWN_INSTANCE);
        await assert.rejects(c.openSeries('../../etc/passwd'), (e: ProtocolError) => e.code === 'UNKNOWN_SERIES');
        const [study] = await c.listStudies();
        const series = await c.openSeries(study!.series[0]!.seriesInstanceUid);
        const instance = series.instances[0]!;
        await assert.rejects(c.getFrame(instance.sopInstanceUid, 0), (e: ProtocolError) => e.code === 'FRAME_OUT_OF_RANGE');
        await assert.rejects(c.getFrame(instance.sopInstanceUid, instance.numberOfFrames + 1), (e: ProtocolError) => e.code === 'FRAME_OUT_OF_RANGE');
        // A request mixing good and bad frames: the good ones come, each bad one is reported.
        const stream = c.requestFrames([
          { sopInstanceUid: instance.sopInstanceUid, frameNumber: 1 },
          { sopInstanceUid: 'nope', frameNumber: 1 },
        ]);
        const got: Frame[] = [];
        for await (const f of stream) got.push(f);
        const summary = await stream.done;
        assert.equal(got.length, 1);
        assert.equal(summary.framesSent, 1);
        assert.equal(summary.framesFailed, 1);
        assert.equal(summary.errors[0]?.code, 'UNKNOWN_INSTANCE');
        const frame = await c.getFrame(instance.sopInstanceUid, 1);
        assert.equal(frame.bytes.length > 0, true);
      } finally {
        c.close();
      }
    });
  });

  it('answers malformed messages with MALFORMED_MESSAGE; the connection and other clients carry on', async () => {
    await withServer({}, async (server) => {
      const other = await client(server);
      const raw = await new RawClient(server.url).open();
      try {
        for (const junk of [new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]), new Uint8Array([0x0a, 0x05, 0x01]), 'hello as text', new Uint8Array(0)]) {
          raw.sendRaw(junk);
          const m = await raw.next();
          assert.equal(m.kind, 'error');
          if (m.kind === 'error') assert.equal(m.error.code, ErrorCode.MALFORMED_MESSAGE);
        }
        raw.send({ requestFrames: { requestId: 0, frames: [] } });
        const zero = await raw.next();
        assert.ok(zero.kind === 'error' && zero.error.code === ErrorCode.MALFORMED_MESSAGE);
        raw.send({ listStudies: { requestId: 7 } });
        const list = await raw.next();
        assert.ok(list.kind === 'studyList' && list.studyList.requestId === 7 && list.studyList.total > 0);
        assert.ok((await other.listStudies()).length > 0);
      } finally {
        raw.close();
        other.close();
      }
    });
  });

  it('requires the handshake, and refuses another protocol version with close 1002', async () => {
    await withServer({}, async (server) => {
      const early = await new RawClient(server.url).open(false);
      early.send({ listStudies: { requestId: 3 } });
      const m = await early.next();
      assert.ok(m.kind === 'error' && m.error.code === ErrorCode.HANDSHAKE_REQUIRED && m.error.requestId === 3);
      early.close();
      const wrong = await new RawClient(server.url).open(false);
      wrong.send({ hello: { protocolVersion: 99 } });
      const e = await wrong.next();
      assert.ok(e.kind === 'error' && e.error.code === ErrorCode.UNSUPPORTED_VERSION);
      assert.equal(await wrong.closed, 1002);
    });
  });

  it('pages the study list', async () => {
    await withServer({ maxPageSize: 5 }, async (server) => {
      const c = await client(server);
      try {
        const first = await c.listStudiesPage(0, 100);
        assert.equal(first.studies.length, 5, 'capped at the page size');
        assert.equal(first.nextOffset, 5);
        const all = await c.listStudies();
        assert.equal(all.length, first.total);
        assert.equal(new Set(all.map((s) => s.studyInstanceUid)).size, all.length, 'no study twice');
        for (const s of all) {
          assert.ok(s.series.length > 0);
          assert.equal(s.numberOfFrames, s.series.reduce((a, x) => a + x.numberOfFrames, 0));
        }
      } finally {
        c.close();
      }
    });
  });

  it('sends a higher-priority request before a lower one already queued', async () => {
    await withServer({ chunkSize: 1024, maxBuffered: 8192 }, async (server) => {
      const c = await client(server);
      try {
        const { wanted } = await allFrames(c);
        const refs = wanted.map(({ sopInstanceUid, frameNumber }) => ({ sopInstanceUid, frameNumber }));
        const order: string[] = [];
        const low = c.requestFrames([...refs, ...refs, ...refs], { priority: 0, onFrame: () => { order.push('low'); } });
        const high = c.requestFrames(refs.slice(0, 3), { priority: 10, onFrame: () => { order.push('high'); } });
        await high.done;
        const lowBefore = order.indexOf('high');
        assert.equal(order.filter((o) => o === 'high').length, 3);
        assert.ok(lowBefore < refs.length, `the urgent frames overtook the queue (first after ${lowBefore} low frames)`);
        const summary = await low.cancel();
        assert.equal(summary.cancelled, true);
        assert.ok(summary.framesSent < refs.length * 3, 'cancel stopped the rest');
      } finally {
        c.close();
      }
    });
  });

  it('stops a cancelled request part-way, and sends nothing of it after RequestComplete', async () => {
    await withServer({ chunkSize: 1024, maxBuffered: 4096 }, async (server) => {
      const raw = await new RawClient(server.url).open();
      try {
        const big = (await servedFiles(server.catalogue)).sort((a, b) => b.frames[0]!.length - a.frames[0]!.length)[0]!;
        const frames = Array.from({ length: 500 }, () => ({ sopInstanceUid: big.image.sopInstanceUid, frameNumber: 1 }));
        raw.send({ requestFrames: { requestId: 5, priority: 0, frames } });
        const first = await raw.next();
        assert.equal(first.kind, 'frameChunk');
        raw.send({ cancel: { requestId: 5 } });
        const seen = await raw.until((m) => m.kind === 'requestComplete');
        const done = seen.at(-1)!;
        assert.ok(done.kind === 'requestComplete' && done.requestComplete.cancelled, 'answered with cancelled');
        assert.ok(done.kind === 'requestComplete' && done.requestComplete.framesSent < 500, 'the rest was dropped');
        for (const m of seen) if (m.kind === 'frameChunk') assert.ok(m.payload.length <= 1024, 'chunks within the configured size');
        raw.send({ listStudies: { requestId: 6 } });
        const after = await raw.next();
        assert.equal(after.kind, 'studyList', 'no chunk of the cancelled request after its completion');
      } finally {
        raw.close();
      }
    });
  });

  it('holds a bounded number of bytes for a client that stops reading, and serves others meanwhile', async () => {
    const maxBufferedBytes = 64 * 1024;
    await withServer({ chunkSize: 16 * 1024, maxBuffered: maxBufferedBytes }, async (server) => {
      const stalled = await new RawClient(server.url).open();
      const reader = await client(server);
      try {
        const { wanted } = await allFrames(reader);
        const refs = wanted.map(({ sopInstanceUid, frameNumber }) => ({ sopInstanceUid, frameNumber }));
        // The stalled client asks for everything many times, then stops reading its socket.
        (stalled.ws as WebSocket & { _socket: { pause(): void } })._socket.pause();
        for (let id = 1; id <= 20; id++) stalled.send({ requestFrames: { requestId: id, frames: refs } });
        // Meanwhile another client gets all its frames.
        const stream = reader.requestFrames(refs);
        let n = 0;
        for await (const f of stream) { assert.ok(wanted[n]!.hashes.has(sha256(f.bytes))); n++; }
        assert.equal(n, refs.length);
        // The server fills the stalled client's socket up to the bound, then sends it nothing more.
        await waitFor(() => server.stats.maxBufferedBytes >= maxBufferedBytes, 'the stalled connection to reach its buffer bound');
        const sentAtBound = server.stats.framesSent;
        for (let i = 0; i < 5; i++) await reader.listStudies();
        assert.equal(server.stats.framesSent, sentAtBound, 'nothing more for the stalled client while it does not read');
        assert.ok(sentAtBound < 20 * wanted.length, 'the stalled client did not get everything pushed at it');
        assert.ok(server.stats.maxBufferedBytes <= maxBufferedBytes + 16 * 1024 + 4096,
          `server held at most ${server.stats.maxBufferedBytes} bytes for a connection (bound ${maxBufferedBytes} + one chunk)`);
      } finally {
        stalled.ws.terminate();
        reader.close();
      }
    });
  });
});

describe('instance attributes on frame chunks', () => {
  it('come with the first frame of an instance on a connection, not again; getFrame still returns them', async () => {
    await withServer({}, async (server) => {
      const raw = await new RawClient(server.url).open();
      const c = await client(server);
      try {
        const multi = (await servedFiles(server.catalogue)).find((f) => f.frames.length > 1)!;
        const uid = multi.image.sopInstanceUid;
        raw.send({ requestFrames: { requestId: 1, frames: [{ sopInstanceUid: uid, frameNumber: 1 }, { sopInstanceUid: uid, frameNumber: 2 }] } });
        const seen = await raw.until((m) => m.kind === 'requestComplete');
        const firsts = seen.filter((m) => m.kind === 'frameChunk' && m.frameChunk.offset === 0);
        assert.equal(firsts.length, 2);
        assert.ok(firsts[0]!.kind === 'frameChunk' && firsts[0]!.frameChunk.instance?.sopInstanceUid === uid, 'first frame describes the instance');
        assert.ok(firsts[1]!.kind === 'frameChunk' && firsts[1]!.frameChunk.instance === null, 'second frame does not repeat it');
        // A connection that opened the series has the attributes from its manifest: no chunk repeats them.
        const fresh = await new RawClient(server.url).open();
        try {
          fresh.send({ openSeries: { requestId: 2, seriesInstanceUid: multi.series.seriesInstanceUid } });
          await fresh.until((m) => m.kind === 'seriesManifest');
          fresh.send({ requestFrames: { requestId: 3, frames: [{ sopInstanceUid: uid, frameNumber: 1 }] } });
          const chunks = (await fresh.until((m) => m.kind === 'requestComplete')).filter((m) => m.kind === 'frameChunk');
          assert.ok(chunks.length > 0 && chunks.every((m) => m.kind === 'frameChunk' && m.frameChunk.instance === null), 'no attributes after the manifest');
        } finally {
          fresh.close();
        }
        // Through the client API, without opening the series, each frame still has its attributes.
        const f1 = await c.getFrame(uid, 1);
        const f2 = await c.getFrame(uid, 2);
        assert.equal(f1.instance?.rows, multi.image.rows);
        assert.equal(f2.instance?.numberOfFrames, multi.frames.length);
      } finally {
        raw.close();
        c.close();
      }
    });
  });
});
