// The HTTP stream (proto/README.md §9): the server's messages over one streamed GET instead of the
// WebSocket. Real server on 127.0.0.1, the client in Node with Node's own fetch (browsers use it
// by default: e2e.test.ts), and raw HTTP to check the keys, the framing, the memory bound and
// what happens when either side goes away.
import assert from 'node:assert/strict';
import { createServer, get, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { connect, type DicomStreamClient } from '../web-client/index.js';
import { MessageReader, MessageSplitter, httpStreamUrl } from '../web-client/http-stream.js';
import { createLogger, startServer } from '../server/index.js';
import { decodeServerMessage, ErrorCode, PROTOCOL_VERSION, type DecodedServerMessage } from '../shared/protocol.js';
import { filesDir, servedFrameHashes, sha256 } from './helpers/corpus.js';
import { RawClient, servedFiles, withServer } from './helpers/server.js';
import { waitFor } from './helpers/wait-for.js';

const viaHttp = (url: string, options: Parameters<typeof connect>[1] = {}): Promise<DicomStreamClient> => connect(url, { WebSocket, httpStream: true, ...options });

/** A raw connection that asked for an HTTP stream: its key from Welcome. */
async function rawWithKey(url: string): Promise<{ raw: RawClient; key: string }> {
  const raw = await new RawClient(url).open(false);
  raw.send({ hello: { protocolVersion: PROTOCOL_VERSION, clientName: 'raw', httpStream: true } });
  const welcome = await raw.next();
  assert.equal(welcome.kind, 'welcome');
  return { raw, key: welcome.kind === 'welcome' ? welcome.welcome.httpStreamKey : '' };
}

/** GET of an HTTP stream with Node's http (no fetch: the test controls reading). */
function getStream(url: string, headers: Record<string, string> = {}): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => get(url, { headers }, resolve).on('error', reject));
}

/** The messages of a raw HTTP stream response as they come. */
function messagesOf(response: IncomingMessage): { next(): Promise<DecodedServerMessage>; keepAlives: () => number } {
  const splitter = new MessageSplitter(1 << 30);
  const queue: DecodedServerMessage[] = [];
  const waiters: Array<(m: DecodedServerMessage) => void> = [];
  let keepAlives = 0;
  let tail = Buffer.alloc(0);
  response.on('data', (chunk: Buffer) => {
    // Count the zero-length records the splitter leaves out.
    tail = Buffer.concat([tail, chunk]);
    while (tail.length >= 4) {
      const length = tail.readUInt32LE(0);
      if (length === 0) keepAlives++;
      if (tail.length < 4 + length) break;
      tail = tail.subarray(4 + length);
    }
    for (const m of splitter.push(chunk)) {
      const decoded = decodeServerMessage(m);
      const w = waiters.shift();
      if (w) w(decoded); else queue.push(decoded);
    }
  });
  return {
    next: () => queue.length ? Promise.resolve(queue.shift()!) : new Promise((r) => waiters.push(r)),
    keepAlives: () => keepAlives,
  };
}

describe('HTTP stream', () => {
  it('carries every frame of the corpus byte-exact, each request ending after its frames', async () => {
    await withServer({}, async (server) => {
      const c = await viaHttp(server.url);
      try {
        assert.equal(c.transport, 'http-stream', c.httpStreamError?.message);
        assert.equal(server.stats.httpStreams, 1);
        const hashes = servedFrameHashes();
        const refs = (await servedFiles(server.catalogue)).flatMap((f) => f.frames.map((_, i) => ({ sopInstanceUid: f.image.sopInstanceUid, frameNumber: i + 1 })));
        const stream = c.requestFrames(refs);
        let n = 0;
        for await (const frame of stream) {
          assert.ok(hashes.get(frame.sopInstanceUid)?.[frame.frameNumber - 1]?.has(sha256(frame.bytes)), `${frame.sopInstanceUid}#${frame.frameNumber} byte-exact`);
          n++;
        }
        const summary = await stream.done;
        assert.equal(n, refs.length);
        assert.equal(summary.framesSent, refs.length, 'RequestComplete came after every frame');
        // Control answers come the same way.
        assert.ok((await c.listStudies()).length > 0);
      } finally {
        c.close();
      }
      await waitFor(() => server.stats.httpStreams === 0, 'the HTTP stream to end with its connection');
    });
  });

  it('is not used when the server does not offer it, or when the GET does not reach dicomstream', async () => {
    await withServer({ httpStream: false }, async (server) => {
      const c = await viaHttp(server.url);
      try {
        assert.equal(c.transport, 'websocket');
        assert.equal(c.httpStreamError, undefined, 'nothing was offered, so nothing failed');
        assert.ok((await c.listStudies()).length > 0);
      } finally {
        c.close();
      }
    });
    // Mounted on an embedder's server whose own handler answers every request itself (it does not
    // pass them to handleRequest): the GET gets the embedder's 404 and the client stays on the WebSocket.
    const http = createServer((_req, res) => { res.writeHead(404); res.end(); });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const server = await startServer({ root: filesDir, server: http, path: '/stream', indexDir: false, log: createLogger('silent') });
    try {
      const c = await viaHttp(server.url);
      try {
        assert.equal(c.transport, 'websocket');
        assert.match(c.httpStreamError?.message ?? '', /HTTP 404/);
        assert.equal(c.httpStreamError?.code, 'HTTP_STREAM_UNAVAILABLE');
        const [study] = await c.listStudies();
        const series = await c.openSeries(study!.series[0]!.seriesInstanceUid);
        const frame = await c.getFrame(series.instances[0]!.sopInstanceUid, 1);
        assert.ok(frame.bytes.length > 0);
      } finally {
        c.close();
      }
    } finally {
      await server.close();
      http.close();
    }
  });

  it('attaches once, only with its own key, and only when the client asked for it', async () => {
    await withServer({}, async (server) => {
      const { raw, key } = await rawWithKey(server.url);
      const plain = await new RawClient(server.url).open();
      try {
        assert.match(key, /^[0-9a-f]{32}$/);
        const other = await getStream(httpStreamUrl(server.url, 'not-a-key'));
        assert.equal(other.statusCode, 404, 'a wrong key');
        other.resume();
        // UseHttpStream before any stream is attached is refused; the connection goes on.
        raw.send({ useHttpStream: {} });
        const refused = await raw.next();
        assert.ok(refused.kind === 'error' && refused.error.code === ErrorCode.MALFORMED_MESSAGE, JSON.stringify(refused));
        const response = await getStream(httpStreamUrl(server.url, key));
        assert.equal(response.statusCode, 200);
        assert.equal(response.headers['cache-control'], 'no-store');
        const messages = messagesOf(response);
        assert.equal((await messages.next()).kind, 'httpStreamOpened');
        const again = await getStream(httpStreamUrl(server.url, key));
        assert.equal(again.statusCode, 404, 'a key is good once');
        again.resume();
        // Until the client switches, answers still come over the WebSocket.
        raw.send({ listStudies: { requestId: 7 } });
        assert.equal((await raw.next()).kind, 'studyList');
        raw.send({ useHttpStream: {} });
        raw.send({ listStudies: { requestId: 8 } });
        const answer = await messages.next();
        assert.ok(answer.kind === 'studyList' && answer.studyList.requestId === 8, 'after UseHttpStream, answers come over the HTTP stream');
        // A connection that did not ask was given no key.
        plain.send({ hello: { protocolVersion: PROTOCOL_VERSION, clientName: 'again' } });
        const welcome = await plain.next();
        assert.ok(welcome.kind === 'welcome' && welcome.welcome.httpStreamKey === '');
      } finally {
        raw.close();
        plain.close();
      }
    });
  });

  it('takes a key of the client\'s own, its GET sent before the Hello is through; refuses a key already in use', async () => {
    await withServer({}, async (server) => {
      const key = 'a1'.repeat(16);
      // The GET first: it waits for the connection that names its key.
      const early = getStream(httpStreamUrl(server.url, key));
      await new Promise((r) => setTimeout(r, 50));
      const raw = await new RawClient(server.url).open(false);
      const thief = await new RawClient(server.url).open(false);
      const bad = await new RawClient(server.url).open(false);
      try {
        raw.send({ hello: { protocolVersion: PROTOCOL_VERSION, clientName: 'raw', httpStream: true, httpStreamKey: key } });
        const welcome = await raw.next();
        assert.ok(welcome.kind === 'welcome' && welcome.welcome.httpStreamKey === key, 'the client\'s key is offered');
        const response = await early;
        assert.equal(response.statusCode, 200);
        const messages = messagesOf(response);
        assert.equal((await messages.next()).kind, 'httpStreamOpened');
        raw.send({ useHttpStream: {} });
        raw.send({ listStudies: { requestId: 3 } });
        assert.equal((await messages.next()).kind, 'studyList');
        // Another connection naming the same key (or a key that is not 32 hex digits) is offered none.
        thief.send({ hello: { protocolVersion: PROTOCOL_VERSION, clientName: 'thief', httpStream: true, httpStreamKey: key } });
        const refused = await thief.next();
        assert.ok(refused.kind === 'welcome' && refused.welcome.httpStreamKey === '');
        bad.send({ hello: { protocolVersion: PROTOCOL_VERSION, clientName: 'bad', httpStream: true, httpStreamKey: 'x'.repeat(32) } });
        const none = await bad.next();
        assert.ok(none.kind === 'welcome' && none.welcome.httpStreamKey === '');
        const again = await getStream(httpStreamUrl(server.url, key));
        assert.equal(again.statusCode, 404, 'a key in use is not attached twice');
        again.resume();
        response.destroy();
      } finally {
        raw.close();
        thief.close();
        bad.close();
      }
      // A GET whose Hello never comes gets its 404 after a wait (5 s).
      const t0 = Date.now();
      const orphan = await getStream(httpStreamUrl(server.url, 'b2'.repeat(16)));
      assert.equal(orphan.statusCode, 404);
      assert.ok(Date.now() - t0 >= 4900, 'it waited for its Hello');
      orphan.resume();
    });
  });

  it('refuses a page from an origin the server does not allow', async () => {
    await withServer({ access: { origins: ['https://viewer.example.org'] } }, async (server) => {
      const { raw, key } = await rawWithKey(server.url);
      try {
        const refused = await getStream(httpStreamUrl(server.url, key), { origin: 'https://elsewhere.example.org' });
        assert.equal(refused.statusCode, 403);
        refused.resume();
        const allowed = await getStream(httpStreamUrl(server.url, key), { origin: 'https://viewer.example.org' });
        assert.equal(allowed.statusCode, 200);
        assert.equal(allowed.headers['access-control-allow-origin'], 'https://viewer.example.org');
        allowed.destroy();
      } finally {
        raw.close();
      }
    });
  });

  it('holds a bounded number of bytes for a client that stops reading its stream', async () => {
    const maxBufferedBytes = 64 * 1024;
    await withServer({ chunkSize: 16 * 1024, maxBuffered: maxBufferedBytes }, async (server) => {
      const { raw, key } = await rawWithKey(server.url);
      const response = await getStream(httpStreamUrl(server.url, key));
      try {
        assert.equal((await messagesOf(response).next()).kind, 'httpStreamOpened');
        response.pause();
        response.socket.pause();
        raw.send({ useHttpStream: {} });
        const refs = (await servedFiles(server.catalogue)).flatMap((f) => f.frames.map((_, i) => ({ sopInstanceUid: f.image.sopInstanceUid, frameNumber: i + 1 })));
        for (let id = 1; id <= 20; id++) raw.send({ requestFrames: { requestId: id, frames: refs } });
        await waitFor(() => server.stats.maxBufferedBytes >= maxBufferedBytes, 'the stalled stream to reach its buffer bound');
        // Once the kernel's socket buffers are full too, the server sends nothing more.
        let sent = -1;
        await waitFor(async () => {
          const before = server.stats.framesSent;
          await new Promise((r) => setTimeout(r, 100));
          return before === server.stats.framesSent && (sent = before) >= 0;
        }, 'sending to stop');
        assert.ok(sent < 20 * refs.length, `${sent} of ${20 * refs.length} frames sent to a stream nobody reads`);
        assert.ok(server.stats.maxBufferedBytes <= maxBufferedBytes + 16 * 1024 + 4096,
          `server held at most ${server.stats.maxBufferedBytes} bytes for the connection (bound ${maxBufferedBytes} + one chunk)`);
      } finally {
        response.destroy();
        raw.ws.terminate();
      }
    });
  });

  it('ends the connection when the stream goes away, and the stream when the connection does', async () => {
    await withServer({}, async (server) => {
      // The client drops its HTTP stream: the server closes the WebSocket (1001).
      const { raw, key } = await rawWithKey(server.url);
      const response = await getStream(httpStreamUrl(server.url, key));
      await new Promise((r) => response.once('data', r));
      raw.send({ useHttpStream: {} });
      await waitFor(() => server.stats.httpStreams === 1, 'the stream to attach');
      response.destroy();
      assert.equal(await raw.closed, 1001);
      // The client closes its connection: the server ends the HTTP stream.
      const c = await viaHttp(server.url);
      assert.equal(c.transport, 'http-stream');
      c.close();
      await waitFor(() => server.stats.httpStreams === 0 && server.stats.connections === 0, 'the stream and the connection to end');
      // The server goes away: the client's open requests fail with CONNECTION_CLOSED, not hang.
      const d = await viaHttp(server.url);
      const [study] = await d.listStudies();
      const series = await d.openSeries(study!.series[0]!.seriesInstanceUid);
      const pending = d.requestFrames(series.instances.map((i) => ({ sopInstanceUid: i.sopInstanceUid, frameNumber: 1 })));
      await server.close({ deadlineMs: 0 });
      await assert.rejects(async () => { for await (const _ of pending) { /* drain */ } }, { code: 'CONNECTION_CLOSED' });
    });
  });

  it('sends a keep-alive on a stream with nothing to say', async () => {
    await withServer({ heartbeat: 0.1 }, async (server) => {
      const { raw, key } = await rawWithKey(server.url);
      const response = await getStream(httpStreamUrl(server.url, key));
      try {
        const messages = messagesOf(response);
        assert.equal((await messages.next()).kind, 'httpStreamOpened');
        raw.send({ useHttpStream: {} });
        await waitFor(() => messages.keepAlives() >= 2, 'two keep-alives', 3000);
      } finally {
        response.destroy();
        raw.close();
      }
    });
  });
});

describe('HTTP stream framing (client)', () => {
  it('cuts messages out of chunks of any size, each in a buffer of its own', () => {
    const bodies = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(70_000).map((_, i) => i & 0xff), new Uint8Array([9])];
    const stream = Buffer.concat(bodies.flatMap((b) => { const h = Buffer.alloc(4); h.writeUInt32LE(b.length); return [h, Buffer.from(b)]; }));
    for (const size of [1, 3, 4, 5, 1000, stream.length]) {
      const splitter = new MessageSplitter(1 << 20);
      const out: Uint8Array[] = [];
      for (let at = 0; at < stream.length; at += size) out.push(...splitter.push(stream.subarray(at, at + size)));
      assert.deepEqual(out.map((m) => Buffer.from(m)), bodies.filter((b) => b.length).map((b) => Buffer.from(b)), `chunks of ${size}`);
      assert.ok(out.every((m) => m.byteOffset === 0 && m.buffer.byteLength === m.length), 'each message owns its buffer');
      assert.ok(splitter.atBoundary);
    }
    // Anything longer than the bound is not a dicomstream stream (an HTML error page, say).
    assert.throws(() => new MessageSplitter(1024).push(Buffer.from('<html><body>')), /not a dicomstream HTTP stream/);
  });

  it('reads the same messages from a byte stream (read into place) and from a plain one', async () => {
    const bodies = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(300_000).map((_, i) => (i * 7) & 0xff), new Uint8Array(65_530).fill(5), new Uint8Array([9])];
    const stream = Buffer.concat(bodies.flatMap((b) => { const h = Buffer.alloc(4); h.writeUInt32LE(b.length); return [h, Buffer.from(b)]; }));
    for (const type of ['bytes', undefined] as const) {
      for (const size of [13, 4096, 100_000, stream.length]) {
        const chunks: Uint8Array[] = [];
        for (let at = 0; at < stream.length; at += size) chunks.push(new Uint8Array(stream.subarray(at, at + size)));
        const body = new ReadableStream<Uint8Array>({ type, start(c) { for (const chunk of chunks) c.enqueue(chunk); c.close(); } } as UnderlyingDefaultSource<Uint8Array>);
        const reader = new MessageReader(body, 1 << 20);
        const out: Uint8Array[] = [];
        for (let m = await reader.next(); m; m = await reader.next()) out.push(m);
        assert.deepEqual(out.map((m) => Buffer.from(m)), bodies.filter((b) => b.length).map((b) => Buffer.from(b)), `${type ?? 'plain'} stream, chunks of ${size}`);
        assert.ok(out.every((m) => m.byteOffset === 0 && m.buffer.byteLength === m.length), 'each message owns its buffer');
      }
      // A stream cut inside a message is an error, not a short message.
      const cut = new ReadableStream<Uint8Array>({ type, start(c) { c.enqueue(new Uint8Array(stream.subarray(0, 5000))); c.close(); } } as UnderlyingDefaultSource<Uint8Array>);
      const reader = new MessageReader(cut, 1 << 20);
      assert.ok(await reader.next());
      await assert.rejects(reader.next(), /ended inside a message/);
    }
  });

  it('finds the stream beside the WebSocket URL, under its path, with its query (a load balancer hashing on it routes both alike)', () => {
    assert.equal(httpStreamUrl('ws://127.0.0.1:8080/', 'k'), 'http://127.0.0.1:8080/http-stream?key=k');
    assert.equal(httpStreamUrl('wss://pacs.example.org/stream?series=1.2.3', 'k'), 'https://pacs.example.org/stream/http-stream?series=1.2.3&key=k');
    assert.equal(httpStreamUrl('ws://h/?key=theirs#x', 'k'), 'http://h/http-stream?key=k');
    assert.equal(httpStreamUrl('ws://h/a/b/', 'k'), 'http://h/a/b/http-stream?key=k');
  });
});
