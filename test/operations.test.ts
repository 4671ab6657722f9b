// What an operator relies on: TLS; limits on connections, message sizes and message rates, each
// answered with a clear status, error or close code; heartbeats that cut dead peers; /healthz,
// /readyz and Prometheus /metrics; a graceful shutdown that lets frames in flight finish.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { connect, type ProtocolError } from '../web-client/index.js';
import { ErrorCode, PROTOCOL_VERSION } from '../shared/protocol.js';
import { RawClient, client, servedFiles, withServer } from './helpers/server.js';
import { waitFor } from './helpers/wait-for.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'tls');
const cert = readFileSync(join(fixtures, 'cert.pem'));
const key = readFileSync(join(fixtures, 'key.pem'));

function fetchText(url: string, ca?: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const done = (res: import('node:http').IncomingMessage) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    };
    (url.startsWith('https') ? httpsGet(url, { ca }, done) : httpGet(url, done)).on('error', reject);
  });
}

/** The HTTP status an upgrade gets (101 when let in). */
function upgradeStatus(url: string): Promise<{ status: number; ws: WebSocket }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.on('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0, ws }));
    ws.on('open', () => resolve({ status: 101, ws }));
    ws.on('error', () => undefined);
  });
}

const httpOf = (url: string) => url.replace(/^ws/, 'http');

describe('operations', () => {
  it('serves wss:// and https:// with a certificate', async () => {
    await withServer({ tls: { cert, key } }, async (server) => {
      assert.match(server.url, /^wss:\/\/127\.0\.0\.1:\d+\/$/);
      class Trusting extends WebSocket {
        constructor(url: string) { super(url, { ca: cert }); }
      }
      const c = await connect(server.url, { WebSocket: Trusting as unknown as typeof WebSocket });
      const [study] = await c.listStudies();
      const series = await c.openSeries(study!.series[0]!.seriesInstanceUid);
      assert.ok((await c.getFrame(series.instances[0]!.sopInstanceUid, 1)).bytes.length > 0);
      c.close();
      assert.equal((await fetchText(`${httpOf(server.url)}healthz`, cert)).status, 200);
      // A client that does not trust the certificate does not get in.
      await assert.rejects(connect(server.url, { WebSocket }));
    });
  });

  it('limits connections in all (503) and per address (429), and lets in again when one closes', async () => {
    await withServer({ maxConnections: 3, maxConnectionsPerAddress: 2 }, async (server) => {
      const a = await upgradeStatus(server.url);
      const b = await upgradeStatus(server.url);
      assert.deepEqual([a.status, b.status], [101, 101]);
      const c = await upgradeStatus(server.url);
      assert.equal(c.status, 429, 'a third from the same address');
      a.ws.close();
      await new Promise((r) => a.ws.once('close', r));
      await waitFor(() => server.stats.connections === 1, 'the server to count the closed connection out');
      const d = await upgradeStatus(server.url);
      assert.equal(d.status, 101, 'room again after a close');
      b.ws.close();
      d.ws.close();
      const metrics = await server.metrics();
      assert.match(metrics, /dicomstream_connections_refused_total\{reason="max connections per address"\} 1/);
    });
    await withServer({ maxConnections: 1 }, async (server) => {
      const a = await upgradeStatus(server.url);
      const b = await upgradeStatus(server.url);
      assert.deepEqual([a.status, b.status], [101, 503]);
      a.ws.close();
    });
  });

  it('refuses messages over the rate with RATE_LIMITED, closes on an oversized message (1009), and the others carry on', async () => {
    await withServer({ rateLimit: 20, maxMessageSize: 64 * 1024 }, async (server) => {
      const other = await client(server);
      const raw = await new RawClient(server.url).open();
      for (let i = 1; i <= 100; i++) raw.send({ listStudies: { requestId: i } });
      let answered = 0;
      let limited = 0;
      for (let i = 0; i < 100; i++) {
        const m = await raw.next();
        if (m.kind === 'studyList') answered++;
        else if (m.kind === 'error' && m.error.code === ErrorCode.RATE_LIMITED) limited++;
      }
      // A burst of twice the rate (40, less the Hello) gets through; the rest is refused, each with its request id.
      assert.ok(answered >= 35 && answered <= 42, `${answered} answered`);
      assert.equal(answered + limited, 100);
      // The bucket refills at the rate (20/s): a request a little later is answered again.
      let requestId = 1000;
      await waitFor(async () => {
        raw.send({ listStudies: { requestId: ++requestId } });
        const m = await raw.next();
        if (m.kind !== 'studyList') assert.ok(m.kind === 'error' && m.error.code === ErrorCode.RATE_LIMITED, JSON.stringify(m));
        return m.kind === 'studyList';
      }, 'the rate-limit bucket to refill', 2000);

      raw.sendRaw(new Uint8Array(65 * 1024));
      assert.equal(await raw.closed, 1009);
      assert.ok((await other.listStudies()).length > 0, 'other clients carry on');
      other.close();
    });
  });

  it('bounds the frames queued per connection over all its requests', async () => {
    await withServer({ maxQueuedFrames: 100 }, async (server) => {
      const raw = await new RawClient(server.url).open(false);
      raw.send({ hello: { protocolVersion: PROTOCOL_VERSION, initialWindow: 1 } }); // a window that keeps everything queued
      const welcome = await raw.next();
      assert.ok(welcome.kind === 'welcome' && welcome.welcome.limits.maxQueuedFrames === 100);
      const uid = (await servedFiles(server.catalogue))[0]!.image.sopInstanceUid;
      const frames = (n: number) => Array.from({ length: n }, () => ({ sopInstanceUid: uid, frameNumber: 1 }));
      raw.send({ requestFrames: { requestId: 1, frames: frames(60) } });
      raw.send({ requestFrames: { requestId: 2, frames: frames(60) } });
      const refused = (await raw.until((m) => m.kind === 'error')).at(-1)!;
      assert.ok(refused.kind === 'error' && refused.error.code === ErrorCode.TOO_MANY_REQUESTS && refused.error.requestId === 2, JSON.stringify(refused));
      raw.send({ cancel: { requestId: 1 } });
      raw.send({ requestFrames: { requestId: 3, frames: frames(60) } });
      raw.send({ listStudies: { requestId: 4 } });
      const after = (await raw.until((m) => m.kind === 'studyList' || m.kind === 'error')).at(-1)!;
      assert.equal(after.kind, 'studyList', 'request 3 was taken once request 1 was cancelled');
      raw.close();
    });
  });

  it('cuts a peer that stops answering pings', async () => {
    await withServer({ heartbeat: 0.1 }, async (server) => {
      const dead = new WebSocket(server.url, { autoPong: false });
      const closed = new Promise<number>((r) => dead.once('close', (c) => r(c)));
      const alive = await client(server);
      const code = await closed;
      assert.equal(code, 1006, 'terminated, no closing handshake');
      // Three more heartbeats answered: the live peer was pinged, and kept.
      const socket = (alive as unknown as { socket: WebSocket }).socket;
      await new Promise<void>((resolve) => { let pings = 0; socket.on('ping', () => { if (++pings === 3) resolve(); }); });
      assert.ok((await alive.listStudies()).length > 0, 'a peer that answers stays');
      assert.equal(server.stats.connections, 1);
      alive.close();
    });
  });

  it('answers /healthz, /readyz and /metrics with what the server did', async () => {
    await withServer({}, async (server) => {
      const base = httpOf(server.url);
      assert.deepEqual(await fetchText(`${base}healthz`), { status: 200, body: 'ok\n' });
      assert.deepEqual(await fetchText(`${base}readyz`), { status: 200, body: 'ready\n' });
      const c = await client(server);
      const files = await servedFiles(server.catalogue);
      for (const f of files.slice(0, 5)) await c.getFrame(f.image.sopInstanceUid, 1);
      await c.getFrame(files[0]!.image.sopInstanceUid, 1);
      await c.getFrame('1.2.3.nope', 1).catch((e: ProtocolError) => e);
      const { status, body } = await fetchText(`${base}metrics`);
      assert.equal(status, 200);
      const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(body)?.[1]);
      assert.equal(value('dicomstream_frames_sent_total'), 6);
      assert.equal(value('dicomstream_frame_latency_seconds_count'), 6);
      assert.ok(value('dicomstream_bytes_sent_total') > 0);
      assert.equal(value('dicomstream_connections'), 1);
      assert.match(body, /dicomstream_errors_total\{code="UNKNOWN_INSTANCE"\} 1/);
      // Five frames read once each (misses, now cached), then the first again (a hit).
      assert.deepEqual([value('dicomstream_frame_cache_misses_total'), value('dicomstream_frame_cache_hits_total')], [5, 1]);
      assert.match(body, new RegExp(`dicomstream_index_entries\\{kind="instances"\\} ${server.catalogue.instanceCount}`));
      assert.ok(value('dicomstream_index_cache_misses_total') >= 1);
      assert.match(body, /dicomstream_process_resident_memory_bytes/);
      c.close();
    });
  });

  it('shuts down gracefully: refuses new connections, lets frames in flight finish, closes with 1001', async () => {
    await withServer({ chunkSize: 4096 }, async (server) => {
      const c = await connect(server.url, { WebSocket, window: 8192 });
      const files = await servedFiles(server.catalogue);
      const frames = files.flatMap((f) => f.frames.map((_, k) => ({ sopInstanceUid: f.image.sopInstanceUid, frameNumber: k + 1 })));
      let received = 0;
      let firstFrame!: () => void;
      const streaming = new Promise<void>((r) => { firstFrame = r; });
      const stream = c.requestFrames(frames, { onFrame: () => { if (++received === 1) firstFrame(); } });
      const closedWith = new Promise<number>((resolve) => (c as unknown as { socket: WebSocket }).socket.addEventListener('close', (e) => resolve(e.code)));
      await streaming;
      assert.ok(received < frames.length, 'still streaming when the close begins');
      const closing = server.close({ deadlineMs: 20_000 });
      assert.equal((await fetchText(`${httpOf(server.url)}readyz`).catch(() => ({ status: 503 }))).status, 503, 'not ready while stopping');
      const summary = await stream.done;
      assert.equal(summary.cancelled, false);
      assert.equal(received, frames.length, 'every frame in flight was sent before the close');
      await closing;
      assert.equal(await closedWith, 1001);
      await assert.rejects(connect(server.url, { WebSocket, timeoutMs: 2000 }), 'no new connections');
    });
  });

  it('cancels what is left when the shutdown deadline passes', async () => {
    await withServer({ chunkSize: 4096 }, async (server) => {
      const raw = await new RawClient(server.url).open(false);
      raw.send({ hello: { protocolVersion: PROTOCOL_VERSION, initialWindow: 4096 } });
      await raw.next();
      const files = await servedFiles(server.catalogue);
      raw.send({ requestFrames: { requestId: 1, frames: files.map((f) => ({ sopInstanceUid: f.image.sopInstanceUid, frameNumber: 1 })) } });
      // The client never grants more window: the request cannot finish.
      const t0 = Date.now();
      await server.close({ deadlineMs: 300 });
      assert.ok(Date.now() - t0 < 5000);
      assert.equal(await raw.closed, 1001);
    });
  });
});
