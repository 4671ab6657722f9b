// The client survives a lost connection: it connects again and asks for what was still wanted, so
// the application gets every frame once and every answer it awaits. A TCP relay on loopback stands
// between client and server, to cut the link (the real load balancer case is in replicas.test.ts).
import assert from 'node:assert/strict';
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { connect, type ConnectionState, type Frame, type ReconnectInfo } from '../web-client/index.js';
import { OpenRequest, backoffMs, resumable } from '../web-client/resume.js';
import { servedFrameHashes, sha256 } from './helpers/corpus.js';
import { withServer } from './helpers/server.js';
import type { RunningServer } from '../server/index.js';
import { waitFor } from './helpers/wait-for.js';

/** A relay to `port` that can cut every link, hold what the server sends, or stop listening. */
class Relay {
  private readonly links = new Set<{ client: Socket; server: Socket; request: string }>();
  private server!: Server;
  port = 0;
  /** Bytes from the server are held (not passed on) while set. */
  holding = false;

  constructor(private readonly target: number) {}

  async listen(port = 0): Promise<this> {
    this.server = createServer((client) => {
      const server = tcpConnect(this.target, '127.0.0.1');
      const link = { client, server, request: '' };
      this.links.add(link);
      client.on('data', (d: Buffer) => {
        if (!link.request) link.request = d.toString('latin1', 0, Math.min(d.length, 200)).split('\r\n')[0]!;
        server.write(d);
      });
      server.on('data', (d) => { if (!this.holding) client.write(d); });
      const end = () => { this.links.delete(link); client.destroy(); server.destroy(); };
      client.on('close', end).on('error', end);
      server.on('close', end).on('error', end);
    });
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  get url(): string { return `ws://127.0.0.1:${this.port}/`; }
  get open(): number { return this.links.size; }

  /** Cuts every link at once, as a network or a machine gone would (no close frame). */
  cut(): void {
    for (const { client, server } of this.links) { client.destroy(); server.destroy(); }
    this.links.clear();
  }

  /** Cuts only the links whose HTTP request line matches (the HTTP stream's GET, say). */
  cutWhere(request: RegExp): void {
    for (const link of [...this.links]) {
      if (!request.test(link.request)) continue;
      link.client.destroy();
      link.server.destroy();
      this.links.delete(link);
    }
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** A server on the corpus and a relay to it, both stopped after `use`. */
async function withRelay(use: (server: RunningServer, relay: Relay) => Promise<void>): Promise<void> {
  await withServer({}, async (server) => {
    const relay = await new Relay(server.port).listen();
    try {
      await use(server, relay);
    } finally {
      await relay.close();
    }
  });
}

/** Every served corpus frame: its address and sha256. */
async function corpusFrames(url: string): Promise<Array<{ sopInstanceUid: string; frameNumber: number; position: number; hash: string }>> {
  const hashes = servedFrameHashes();
  const c = await connect(url, { WebSocket, reconnect: false });
  const out: Array<{ sopInstanceUid: string; frameNumber: number; position: number; hash: string }> = [];
  for (const study of await c.listStudies()) {
    for (const s of study.series) {
      for (const instance of (await c.openSeries(s.seriesInstanceUid)).instances) {
        const list = hashes.get(instance.sopInstanceUid);
        if (!list) continue;
        for (let n = 1; n <= instance.numberOfFrames; n++) {
          out.push({ sopInstanceUid: instance.sopInstanceUid, frameNumber: n, position: out.length, hash: sha256((await c.getFrame(instance.sopInstanceUid, n)).bytes) });
        }
      }
    }
  }
  c.close();
  return out;
}

describe('reconnect and resume', () => {
  it('a cut mid-stream: every frame arrives once, byte-exact; the summary counts both connections; state and reconnect events tell it', async () => {
    await withRelay(async (server, relay) => {
      const frames = await corpusFrames(server.url);
      const c = await connect(relay.url, { WebSocket, window: 64 * 1024, reconnect: { initialDelayMs: 20 } });
      const states: ConnectionState[] = [];
      const reconnects: ReconnectInfo[] = [];
      c.onStateChange((s) => states.push(s));
      c.onReconnect((i) => reconnects.push(i));
      const got: Frame[] = [];
      let cutAt = 0;
      const stream = c.requestFrames(frames, {
        onFrame: async (f) => {
          got.push(f);
          if (got.length === 10) { cutAt = got.length; relay.cut(); }
          await new Promise((resolve) => setTimeout(resolve, 1));
        },
      });
      const summary = await stream.done;
      assert.ok(cutAt > 0);
      assert.equal(got.length, frames.length);
      const seen = new Set(got.map((f) => `${f.sopInstanceUid}#${f.frameNumber}`));
      assert.equal(seen.size, frames.length, 'each frame once');
      const hashOf = new Map(frames.map((f) => [`${f.sopInstanceUid}#${f.frameNumber}`, f.hash]));
      for (const f of got) assert.equal(sha256(f.bytes), hashOf.get(`${f.sopInstanceUid}#${f.frameNumber}`), `${f.sopInstanceUid}#${f.frameNumber}`);
      assert.equal(summary.framesSent, frames.length);
      assert.deepEqual(states, ['reconnecting', 'open']);
      assert.equal(reconnects.length, 1);
      assert.equal(reconnects[0]!.requests, 1);
      assert.match(reconnects[0]!.reason, /1006/);
      assert.equal(c.state, 'open');
      c.close();
      assert.equal(c.state, 'closed');
    });
  });

  it('over the HTTP stream too: its loss alone (the WebSocket closed after it) makes one reconnect, and every frame arrives once', async () => {
    await withRelay(async (server, relay) => {
      const frames = await corpusFrames(server.url);
      const c = await connect(relay.url, { WebSocket, httpStream: true, window: 64 * 1024, reconnect: { initialDelayMs: 20 } });
      assert.equal(c.transport, 'http-stream');
      const reconnects: ReconnectInfo[] = [];
      c.onReconnect((i) => reconnects.push(i));
      const got = new Set<string>();
      const stream = c.requestFrames(frames, {
        onFrame: async (f) => {
          const key = `${f.sopInstanceUid}#${f.frameNumber}`;
          assert.ok(!got.has(key), `${key} once`);
          got.add(key);
          if (got.size === 10) relay.cutWhere(/^GET \/http-stream/);
          await new Promise((resolve) => setTimeout(resolve, 1));
        },
      });
      const summary = await stream.done;
      assert.equal(got.size, frames.length);
      assert.equal(summary.framesSent, frames.length);
      assert.equal(reconnects.length, 1);
      assert.equal(c.transport, 'http-stream', 'the new connection has its own HTTP stream');
      c.close();
    });
  });

  it('answers awaited when the link was cut are asked again; a cancel while reconnecting ends the stream here, never re-asked', async () => {
    await withRelay(async (server, relay) => {
      const c = await connect(relay.url, { WebSocket, reconnect: { initialDelayMs: 200, maxDelayMs: 200 } });
      const [study] = await c.listStudies();
      const uid = study!.series[0]!.seriesInstanceUid;
      // The server's answer never comes on this connection.
      relay.holding = true;
      const opened = c.openSeries(uid);
      await new Promise((resolve) => setTimeout(resolve, 50));
      relay.holding = false;
      relay.cut();
      await waitFor(() => c.state === 'reconnecting', 'reconnecting');
      // Asked while the link is down: cancelled before it could be sent.
      const errorsBefore = server.stats.errors;
      const stream = c.requestFrames([{ sopInstanceUid: 'never.sent', frameNumber: 1 }]);
      const cancelled = await stream.cancel();
      assert.equal(cancelled.cancelled, true);
      assert.equal(cancelled.framesSent, 0);
      const manifest = await opened;
      assert.equal(manifest.seriesInstanceUid, uid);
      assert.equal(c.state, 'open');
      // The cancelled request was not asked of the new connection (its unknown instance would have got an error).
      await c.listStudies();
      assert.equal(server.stats.errors, errorsBefore);
      c.close();
    });
  });

  it('gives up after the attempts allowed: open requests fail with CONNECTION_CLOSED saying why; reconnect: false fails at once', async () => {
    await withServer({}, async (server) => {
      const relay = await new Relay(server.port).listen();
      const frames = (await corpusFrames(server.url)).slice(0, 3);
      const c = await connect(relay.url, { WebSocket, window: 16 * 1024, reconnect: { maxAttempts: 3, initialDelayMs: 10, maxDelayMs: 20 } });
      const states: ConnectionState[] = [];
      c.onStateChange((s) => states.push(s));
      const stream = c.requestFrames(frames, { onFrame: () => new Promise(() => undefined) }); // never consumed: the stream stays open
      await waitFor(() => server.stats.framesSent > 0, 'a frame sent');
      await relay.close(); // no server at that address any more
      await assert.rejects(stream.done, (e: Error & { code?: string }) => e.code === 'CONNECTION_CLOSED' && /reconnecting failed after 3 attempt\(s\)/.test(e.message));
      assert.deepEqual(states, ['reconnecting', 'reconnecting', 'reconnecting', 'closed']);
      await assert.rejects(c.listStudies(), (e: Error & { code?: string }) => e.code === 'CONNECTION_CLOSED');

      const again = await new Relay(server.port).listen();
      try {
        const d = await connect(again.url, { WebSocket, reconnect: false });
        const pending = d.requestFrames(frames, { onFrame: () => new Promise(() => undefined) });
        await waitFor(() => again.open > 0, 'linked');
        again.cut();
        await assert.rejects(pending.done, (e: Error & { code?: string }) => e.code === 'CONNECTION_CLOSED' && /1006/.test(e.message));
        assert.equal(d.state, 'closed');
      } finally {
        await again.close();
      }
    });
  });
});

describe('resume bookkeeping', () => {
  it('asks again only for frames not received, at their first positions; counts a frame once', () => {
    const r = new OpenRequest([
      { sopInstanceUid: 'a', frameNumber: 1 }, { sopInstanceUid: 'b', frameNumber: 1 },
      { sopInstanceUid: 'a', frameNumber: 1 }, { sopInstanceUid: 'c', frameNumber: 2, position: 9 },
    ], 3, 7);
    assert.equal(r.arrived('a', 1), true);
    assert.equal(r.arrived('x', 1), false, 'not asked for');
    r.failedFrame('b', 1);
    assert.deepEqual(r.resume(), [{ sopInstanceUid: 'a', frameNumber: 1, position: 0 }, { sopInstanceUid: 'c', frameNumber: 2, position: 9 }]);
    assert.equal(r.arrived('a', 1), true);
    assert.equal(r.arrived('a', 1), false, 'each copy once');
    assert.deepEqual(r.summary({ framesSent: 2, framesFailed: 0 }), { framesSent: 3, framesFailed: 1 });
  });

  it('reconnects after losses and server restarts, not after closes asked for; backs off with jitter under a cap', () => {
    for (const code of [1001, 1005, 1006, 1011, 1012, 1013, 1014]) assert.equal(resumable(code), true, String(code));
    for (const code of [1000, 1002, 1003, 1007, 1008, 1009, 1010, 4000]) assert.equal(resumable(code), false, String(code));
    for (let attempt = 1; attempt <= 12; attempt++) {
      const ceiling = Math.min(5000, 100 * 2 ** (attempt - 1));
      const d = backoffMs(attempt, 100, 5000);
      assert.ok(d >= ceiling / 2 && d <= ceiling, `${attempt}: ${d}`);
    }
  });
});
