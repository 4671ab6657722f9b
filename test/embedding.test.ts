// dicomstream inside an embedder's own HTTP server: it streams on its path while the server keeps
// answering its own routes and its own WebSocket upgrades; and the lower-level handleUpgrade.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { createLogger, startServer, type RunningServer } from '../server/index.js';
import { connect } from '../web-client/index.js';
import { filesDir, manifest, sha256 } from './helpers/corpus.js';

/** A corpus instance with a stored-frame reference, to check bytes against. */
const reference = manifest.files.find((f) => f.sop_instance_uid && f.pixel_data?.stored_frame_sha256?.length && !f.pixel_data.encapsulated)!;

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

async function get(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text() };
}

/** Opens a WebSocket and resolves with the first text it receives, or rejects with the HTTP status it got. */
function firstMessage(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('message', (data) => { resolve(String(data)); ws.close(); });
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

describe('embedding', () => {
  const indexDir = mkdtempSync(join(tmpdir(), 'dicomstream-embed-'));
  let http: Server;
  let address: string;
  let ds: RunningServer;
  // The embedder's own WebSocket endpoint, on another path of the same server.
  const chat = new WebSocketServer({ noServer: true });

  before(async () => {
    http = createServer((req, res) => {
      if (ds?.handleRequest(req, res)) return;
      if (req.url === '/api/hello') return void res.end('hello from the app');
      res.writeHead(404).end('app 404');
    });
    http.on('upgrade', (req, socket, head) => {
      if (req.url === '/chat') chat.handleUpgrade(req, socket, head, (ws) => ws.send('chat ready'));
    });
    address = await listen(http);
    ds = await startServer({ root: filesDir, server: http, path: '/dicomstream', indexDir, watch: false, log: createLogger('silent') });
  });

  after(async () => {
    await ds.close();
    chat.close();
    await new Promise((r) => http.close(r));
    rmSync(indexDir, { recursive: true, force: true });
  });

  it('says where it streams: the mounted server\'s address and the path', () => {
    assert.equal(ds.url, `ws://${address}/dicomstream/`);
  });

  it('streams frames byte-exact on its path while the app answers its own routes and upgrades', async () => {
    const client = await connect(`ws://${address}/dicomstream`, { WebSocket });
    try {
      const [frame, hello, chatText] = await Promise.all([
        client.getFrame(reference.sop_instance_uid!, 1),
        get(`http://${address}/api/hello`),
        firstMessage(`ws://${address}/chat`),
      ]);
      assert.equal(sha256(frame.bytes), reference.pixel_data!.stored_frame_sha256![0]);
      assert.deepEqual(hello, { status: 200, body: 'hello from the app' });
      assert.equal(chatText, 'chat ready');
      assert.equal((await client.listStudies()).length > 0, true);
    } finally {
      client.close();
    }
  });

  it('serves its health, readiness and metrics under its path only, and leaves the rest to the app', async () => {
    assert.deepEqual(await get(`http://${address}/dicomstream/healthz`), { status: 200, body: 'ok\n' });
    assert.deepEqual(await get(`http://${address}/dicomstream/readyz`), { status: 200, body: 'ready\n' });
    assert.match((await get(`http://${address}/dicomstream/metrics`)).body, /^dicomstream_connections_total/m);
    assert.deepEqual(await get(`http://${address}/healthz`), { status: 404, body: 'app 404' });
    // The viewer belongs to a server of its own: a mounted one does not serve pages on the app.
    assert.deepEqual(await get(`http://${address}/dicomstream/`), { status: 404, body: 'app 404' });
  });

  it('close() ends its own connections (1001) and takes its listener off, leaving the app\'s server running', async () => {
    const upgradeListeners = http.listenerCount('upgrade');
    const other = await startServer({ root: filesDir, server: http, path: '/second', indexDir: false, watch: false, log: createLogger('silent') });
    assert.equal(http.listenerCount('upgrade'), upgradeListeners + 1);
    const ws = new WebSocket(`ws://${address}/second/`);
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    await other.close({ deadlineMs: 0 });
    assert.equal(await closed, 1001);
    assert.equal(http.listenerCount('upgrade'), upgradeListeners);
    assert.equal(http.listening, true);
    assert.deepEqual(await get(`http://${address}/api/hello`), { status: 200, body: 'hello from the app' });
  });

  it('noServer: the embedder routes upgrades to handleUpgrade itself', async () => {
    const own = await startServer({ root: filesDir, noServer: true, indexDir: false, watch: false, log: createLogger('silent') });
    const app = createServer((_req, res) => res.end('app'));
    app.on('upgrade', (req, socket, head) => {
      if (req.url === '/images') own.handleUpgrade(req, socket, head);
      else socket.destroy();
    });
    const at = await listen(app);
    try {
      assert.equal(own.url, '');
      const client = await connect(`ws://${at}/images`, { WebSocket });
      const frame = await client.getFrame(reference.sop_instance_uid!, 1);
      assert.equal(sha256(frame.bytes), reference.pixel_data!.stored_frame_sha256![0]);
      client.close();
    } finally {
      await own.close();
      await new Promise((r) => app.close(r));
    }
  });
});
