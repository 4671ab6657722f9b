// What operators met on day one (issue 15), each reproduced against a real server on 127.0.0.1:
// WebSockets that never say Hello held their place under the limits for ever (256 of them locked
// out a client with a valid token); behind a reverse proxy every client was the proxy's address,
// so the per-address limit was a global one; half-sent HTTP requests were counted by no limit and
// held file descriptors until /healthz stopped answering; and a refused client could not tell
// 429 from 403, so it retried what would never pass. Short option values keep each test quick;
// what is asserted is what happened (close codes, statuses, log lines, metrics), not timings.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request as httpRequest, createServer as createHttpServer, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { connect as tcpConnect, createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { clientAddress, clientAddressOf, forwardedFor, forwardedForList, trustedProxies } from '../server/client-address.js';
import { createLogger, startServer, type Logger, type RunningServer } from '../server/index.js';
import { LogThrottle } from '../server/log-throttle.js';
import { ConnectionError, connect, type ConnectionState } from '../web-client/index.js';
import { retryableStatus } from '../web-client/resume.js';
import { filesDir } from './helpers/corpus.js';
import { withServer } from './helpers/server.js';
import { waitFor } from './helpers/wait-for.js';

type LogLine = { level: string; msg: string; [field: string]: unknown };

/** A logger that keeps its lines (`level` and above) for the test to read. */
function capturingLogger(level: 'info' | 'warn' = 'warn'): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  return { log: createLogger(level, (line) => lines.push(JSON.parse(line) as LogLine)), lines };
}

const httpOf = (url: string) => url.replace(/^ws/, 'http');

/** `promise`, or a failure naming `what` if it has not settled in `ms` (a regression fails, not hangs). */
async function settles<T>(promise: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms); });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The HTTP status an upgrade gets (101 when let in), with these request headers. */
function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<{ status: number; ws: WebSocket }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.on('unexpected-response', (_req, res) => { resolve({ status: res.statusCode ?? 0, ws }); ws.terminate(); });
    ws.on('open', () => resolve({ status: 101, ws }));
    ws.on('error', () => undefined);
  });
}

/** A GET's status and headers over a connection of its own (no keep-alive pool to hide anything). */
function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A WebSocket that opens and then never says Hello. */
function silentSocket(url: string): Promise<{ ws: WebSocket; closed: Promise<{ code: number; reason: string }> }> {
  const ws = new WebSocket(url);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, closed }));
    ws.once('error', reject);
  });
}

/** A TCP connection that sends `bytes` (part of a request, or nothing) and then stalls; what comes back is kept. */
class StalledRequest {
  readonly socket: Socket;
  received = '';
  isClosed = false;
  readonly closed: Promise<void>;
  readonly connected: Promise<void>;

  constructor(port: number, bytes: string) {
    this.socket = tcpConnect(port, '127.0.0.1');
    this.connected = new Promise((resolve) => this.socket.once('connect', () => { if (bytes) this.socket.write(bytes); resolve(); }));
    this.socket.on('data', (d: Buffer) => { this.received += d.toString('latin1'); });
    this.socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => this.socket.on('close', () => { this.isClosed = true; resolve(); }));
  }
}

async function stalledRequests(port: number, n: number, bytes: string): Promise<StalledRequest[]> {
  const out: StalledRequest[] = [];
  // One after the other: the server accepts them in this order, so the first are the oldest.
  for (let i = 0; i < n; i++) {
    const s = new StalledRequest(port, bytes);
    await s.connected;
    out.push(s);
  }
  return out;
}

const HALF_SENT = 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ';

/** A frame of the corpus, fetched whole: the client is really served, not just let in. */
async function fetchesAFrame(url: string, options: Parameters<typeof connect>[1]): Promise<void> {
  const c = await connect(url, { WebSocket, reconnect: false, ...options });
  try {
    const [study] = await c.listStudies();
    const series = await c.openSeries(study!.series[0]!.seriesInstanceUid);
    assert.ok((await c.getFrame(series.instances[0]!.sopInstanceUid, 1)).bytes.length > 0);
  } finally {
    c.close();
  }
}

describe('handshake timeout', () => {
  it('closes WebSockets that never say Hello (1008, logged with the address), so a client with a valid token gets in again', async () => {
    const { log, lines } = capturingLogger();
    const token = 'a static token for the handshake test';
    await withServer({ handshakeTimeout: 0.3, maxConnectionsPerAddress: 3, access: { token }, log }, async (server) => {
      const silent = await Promise.all([1, 2, 3].map(() => silentSocket(server.url)));
      // The operator's lock-out: the silent sockets hold every place of the address.
      assert.equal((await upgradeStatus(server.url)).status, 429);
      for (const { closed } of silent) assert.deepEqual(await settles(closed, 'the server to close a silent socket'), { code: 1008, reason: 'no Hello within 0.3 s' });
      await waitFor(() => server.stats.connections === 0, 'the server to count the silent sockets out');

      // Their places are free: the client with the token gets in, and is served.
      const c = await connect(server.url, { WebSocket, token, reconnect: false });
      // One more silent socket opened after it: once that one is closed, the client's own
      // deadline has passed too, and it was not closed (it said Hello).
      const late = await silentSocket(server.url);
      assert.equal((await settles(late.closed, 'the server to close the late silent socket')).code, 1008);
      assert.equal(c.state, 'open');
      assert.ok((await c.listStudies()).length > 0);
      c.close();

      const warned = lines.filter((l) => l.msg === 'no protocol handshake within the handshake timeout: connection closed');
      assert.ok(warned.length >= 1 && warned.every((l) => l.level === 'warn' && l.from === '127.0.0.1'), JSON.stringify(warned));
      assert.match(await server.metrics(), /dicomstream_connections_refused_total\{reason="handshake timeout"\} 4/);
    });
  });
});

describe('trusted proxies', () => {
  it('behind a trusted proxy each client named in X-Forwarded-For has its own per-address limit, in the logs and the authorize hook too', async () => {
    const { log, lines } = capturingLogger('info');
    const asked = new Set<string>();
    const access = { authorize: (request: { remoteAddress: string }) => { asked.add(request.remoteAddress); return true; } };
    await withServer({ trustProxy: 'loopback', maxConnectionsPerAddress: 2, access, log }, async (server) => {
      const xff = (value: string) => ({ 'x-forwarded-for': value });
      const a = [await upgradeStatus(server.url, xff('203.0.113.1')), await upgradeStatus(server.url, xff('203.0.113.1'))];
      assert.deepEqual(a.map((x) => x.status), [101, 101]);
      assert.equal((await upgradeStatus(server.url, xff('203.0.113.1'))).status, 429, 'a third from that client');
      // Another client through the same proxy is not held back by the first one's connections.
      const b = await upgradeStatus(server.url, xff('203.0.113.2'));
      assert.equal(b.status, 101);
      // What the client itself wrote left of its own address is not believed: it is still 203.0.113.1.
      assert.equal((await upgradeStatus(server.url, xff('198.51.100.9, 203.0.113.1'))).status, 429);
      // Logged with the client's address; a second refusal for the same reason within a second is
      // left out of the log (a flood of refusals is not a flood of lines), counted by the metrics.
      const refused = lines.filter((l) => l.msg === 'connection refused');
      assert.deepEqual(refused.map((l) => l.from), ['203.0.113.1']);
      assert.match(await server.metrics(), /dicomstream_connections_refused_total\{reason="max connections per address"\} 2/);

      // The authorize hook sees the client's address, over the WebSocket and over DICOMweb.
      class ViaProxy extends WebSocket {
        constructor(url: string) { super(url, { headers: xff('192.0.2.44') }); }
      }
      const c = await connect(server.url, { WebSocket: ViaProxy as unknown as typeof WebSocket, reconnect: false });
      assert.ok((await c.listStudies()).length > 0);
      c.close();
      assert.equal((await get(`${httpOf(server.url)}dicomweb/studies`, xff('192.0.2.45'))).status, 200);
      assert.deepEqual([...asked].sort(), ['192.0.2.44', '192.0.2.45']);
      for (const x of [...a, b]) x.ws.close();
    });
  });

  it('never believes the header of a peer that is not a trusted proxy, by default or when it is not listed', async () => {
    for (const trustProxy of [undefined, '10.0.0.0/8, fd00::/8']) {
      await withServer({ trustProxy, maxConnectionsPerAddress: 2 }, async (server) => {
        const open = [await upgradeStatus(server.url, { 'x-forwarded-for': '203.0.113.1' }), await upgradeStatus(server.url, { 'x-forwarded-for': '203.0.113.2' })];
        assert.deepEqual(open.map((x) => x.status), [101, 101]);
        // All are 127.0.0.1, whatever they say: the limit holds.
        assert.equal((await upgradeStatus(server.url, { 'x-forwarded-for': '203.0.113.3' })).status, 429, `trustProxy ${trustProxy}`);
        for (const x of open) x.ws.close();
      });
    }
  });

  it('reads RFC 7239 Forwarded when told to, and then only it', async () => {
    await withServer({ trustProxy: '127.0.0.1', proxyHeader: 'forwarded', maxConnectionsPerAddress: 1 }, async (server) => {
      const forwarded = { forwarded: 'for="[2001:db8::17]:4711";proto=https' };
      const first = await upgradeStatus(server.url, forwarded);
      assert.equal(first.status, 101);
      assert.equal((await upgradeStatus(server.url, forwarded)).status, 429, 'a second from 2001:db8::17');
      // X-Forwarded-For is not the configured header (a client may have sent it): this is 127.0.0.1's first.
      const other = await upgradeStatus(server.url, { 'x-forwarded-for': '2001:db8::17' });
      assert.equal(other.status, 101);
      first.ws.close();
      other.ws.close();
    });
  });

  it('refuses to start with a trusted proxy that is not an address, a range or a known word', async () => {
    await assert.rejects(startServer({ root: filesDir, port: 0, trustProxy: 'loopback, 10.0.0.0/33', log: createLogger('silent'), indexDir: false }),
      (e: Error & { code?: string }) => e.code === 'BAD_OPTION' && /10\.0\.0\.0\/33/.test(e.message));
    await assert.rejects(startServer({ root: filesDir, port: 0, trustProxy: 'proxy.example', log: createLogger('silent'), indexDir: false }),
      (e: Error & { code?: string }) => e.code === 'BAD_OPTION');
    // A range with its length left out would be /0: every address. A typo must not trust everyone.
    for (const typo of ['10.0.0.1/', '::1/']) assert.throws(() => trustedProxies(typo), (e: Error & { code?: string }) => e.code === 'BAD_OPTION', typo);
  });
});

describe('client address (unit)', () => {
  const trusted = (spec: string) => {
    const list = trustedProxies(spec)!;
    return (a: string) => list.check(a, a.includes(':') ? 'ipv6' : 'ipv4');
  };

  it('walks back from the peer through trusted proxies to the first address that is not one', () => {
    const t = trusted('loopback, 10.0.0.0/8');
    const walk = (peer: string, xff: string) => clientAddress(peer, () => forwardedForList(xff), t);
    assert.equal(walk('127.0.0.1', '203.0.113.1'), '203.0.113.1');
    assert.equal(walk('127.0.0.1', '198.51.100.9, 203.0.113.1, 10.1.2.3'), '203.0.113.1', 'a chain of two proxies');
    assert.equal(walk('192.0.2.1', '203.0.113.1'), '192.0.2.1', 'an untrusted peer is the client');
    assert.equal(walk('127.0.0.1', ''), '127.0.0.1', 'no header: the proxy itself');
    assert.equal(walk('127.0.0.1', '10.0.0.2, 10.0.0.1'), '10.0.0.2', 'all trusted: the furthest');
    assert.equal(walk('127.0.0.1', 'unknown, 10.0.0.1'), '10.0.0.1', 'no address: the proxy that wrote it');
    assert.equal(walk('::ffff:127.0.0.1', '::ffff:203.0.113.1'), '203.0.113.1', 'IPv4-mapped addresses are the IPv4 ones');
    assert.equal(walk('::1', '2001:db8::1'), '2001:db8::1');
  });

  it('parses Forwarded for= values, quoted, bracketed and with ports, in any case', () => {
    assert.deepEqual(forwardedFor('for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711"'), ['2001:db8:cafe::17', '192.0.2.60']);
    assert.deepEqual(forwardedFor(['for="192.0.2.1:8080"', 'proto=https;for=_hidden']), ['_hidden', '192.0.2.1']);
    assert.deepEqual(forwardedFor('proto=https'), ['unknown']);
    assert.deepEqual(forwardedFor('for="a,b";by=x, for=192.0.2.2'), ['192.0.2.2', 'a,b'], 'a comma inside quotes splits nothing');
    assert.deepEqual(forwardedFor(undefined), []);
  });

  it('knows IPv6 ranges and the named ones; a peer is its own address when nothing is trusted', () => {
    const t = trusted('fd00::/8, uniquelocal, linklocal');
    assert.ok(t('fd12::1') && t('172.16.5.4') && t('192.168.1.1') && t('fe80::1') && t('169.254.1.1'));
    assert.ok(!t('2001:db8::1') && !t('8.8.8.8') && !t('172.32.0.1'));
    assert.equal(trustedProxies(' , '), undefined);
    const plain = clientAddressOf(undefined);
    const request = { socket: { remoteAddress: '::ffff:198.51.100.1' }, headers: { 'x-forwarded-for': '1.2.3.4' } } as unknown as IncomingMessage;
    assert.equal(plain(request), '198.51.100.1');
    assert.throws(() => clientAddressOf('loopback', 'x-real-ip'), (e: Error & { code?: string }) => e.code === 'BAD_OPTION');
  });
});

describe('half-sent HTTP requests', () => {
  it('bounds the connections waiting for a request: past it the oldest is closed, so /healthz and clients still get in', async () => {
    const { log, lines } = capturingLogger();
    // The header timeout is long here: only the bound can close anything during the test.
    await withServer({ maxPendingConnections: 10, headerTimeout: 60, log }, async (server) => {
      const stalled = await stalledRequests(server.port, 30, HALF_SENT);
      await waitFor(() => stalled.filter((s) => s.isClosed).length >= 20, 'the server to close the 20 oldest half-sent requests');
      assert.deepEqual(stalled.map((s) => s.isClosed), stalled.map((_, i) => i < 20), 'the oldest were closed, the newest kept');
      assert.match(await server.metrics(), /dicomstream_connections_refused_total\{reason="pending connections"\} 20/);
      const warned = lines.filter((l) => l.msg === 'too many connections waiting for an HTTP request: the one waiting longest was closed');
      assert.ok(warned.length >= 1 && warned.length < 20, `logged ${warned.length} times for 20 (rate-limited)`);
      assert.equal(warned[0]!.from, '127.0.0.1');

      // Still under attack (10 stalled sockets hold the bound): health checks and clients get in.
      assert.equal((await get(`${httpOf(server.url)}healthz`)).status, 200);
      await fetchesAFrame(server.url, {});
      for (const s of stalled) s.socket.destroy();
    });
  });

  it('closes a connection that does not send its whole request within the header timeout (408), logged', async () => {
    const { log, lines } = capturingLogger();
    await withServer({ headerTimeout: 0.3, log }, async (server) => {
      const silent = new StalledRequest(server.port, '');
      const halfGet = new StalledRequest(server.port, HALF_SENT);
      const halfUpgrade = new StalledRequest(server.port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n');
      await settles(Promise.all([silent.closed, halfGet.closed, halfUpgrade.closed]), 'the header timeout to close the stalled connections');
      for (const s of [silent, halfGet, halfUpgrade]) assert.match(s.received, /^HTTP\/1\.1 408 Request Timeout\r\n/);
      const warned = lines.filter((l) => l.msg === 'no whole HTTP request within the header timeout: connection closed');
      assert.ok(warned.length >= 1 && warned[0]!.from === '127.0.0.1', JSON.stringify(lines));
      assert.match(await server.metrics(), /dicomstream_connections_refused_total\{reason="request timeout"\} 3/);
      // A whole request, a WebSocket included, is not cut by it.
      await fetchesAFrame(server.url, {});
    });
  });

  it('on HTTPS, closes a connection whose TLS handshake never comes within the header timeout', async () => {
    const fixtures = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'tls');
    const tls = { cert: readFileSync(join(fixtures, 'cert.pem')), key: readFileSync(join(fixtures, 'key.pem')) };
    await withServer({ tls, headerTimeout: 0.3 }, async (server) => {
      const silent = new StalledRequest(server.port, '');
      await settles(silent.closed, 'the TLS handshake timeout to close the silent connection');
      assert.match(await server.metrics(), /dicomstream_connections_refused_total\{reason="request timeout"\} 1/);
    });
  });

  it('counts a kept-alive connection idle between two requests as waiting', async () => {
    await withServer({ maxPendingConnections: 2, headerTimeout: 60 }, async (server) => {
      const keptAlive = new StalledRequest(server.port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      await waitFor(() => /^HTTP\/1\.1 200 /.test(keptAlive.received), 'the first answer');
      await stalledRequests(server.port, 2, HALF_SENT);
      // It has waited longest since its answer: it is the one closed.
      await settles(keptAlive.closed, 'the kept-alive connection to be closed');
    });
  });

  it('leaves an embedder\'s own server as it is (its timeouts and its clientError)', async () => {
    const http = createHttpServer();
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const before = { headersTimeout: http.headersTimeout, requestTimeout: http.requestTimeout, clientError: http.listenerCount('clientError') };
    const ds = await startServer({ root: filesDir, server: http, path: '/ds', log: createLogger('silent'), indexDir: false, headerTimeout: 1 });
    try {
      assert.deepEqual({ headersTimeout: http.headersTimeout, requestTimeout: http.requestTimeout, clientError: http.listenerCount('clientError') }, before);
    } finally {
      await ds.close();
      await new Promise((resolve) => http.close(resolve));
    }
  });
});

/** Between a client and the server: passes connections through, or refuses each upgrade with a status. */
class Gate {
  private readonly links = new Set<Socket>();
  private server!: TcpServer;
  port = 0;
  /** Upgrades are answered with this status while set. */
  refuseWith: number | undefined;
  /** Upgrades refused so far. */
  refused = 0;
  /** After this many refusals, connections pass again. */
  refuseAtMost = Infinity;

  constructor(private readonly target: number) {}

  async listen(): Promise<this> {
    this.server = createTcpServer((client) => {
      client.on('error', () => undefined);
      if (this.refuseWith !== undefined && this.refused < this.refuseAtMost) {
        this.refused++;
        const status = this.refuseWith;
        client.once('data', () => client.end(`HTTP/1.1 ${status} Refused By Gate\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`));
        return;
      }
      const server = tcpConnect(this.target, '127.0.0.1');
      server.on('error', () => undefined);
      this.links.add(client).add(server);
      client.pipe(server).pipe(client);
      const end = () => { client.destroy(); server.destroy(); this.links.delete(client); this.links.delete(server); };
      client.on('close', end);
      server.on('close', end);
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  get url(): string { return `ws://127.0.0.1:${this.port}/`; }

  /** Cuts every connection that passed, as a lost network would. */
  cut(): void {
    for (const s of this.links) s.destroy();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

describe('CONNECT_FAILED carries the HTTP status', () => {
  const refusedWith = (status: number) => (e: unknown) => {
    const error = e as ConnectionError;
    return error instanceof ConnectionError && error.code === 'CONNECT_FAILED' && error.status === status && error.message.includes(`HTTP ${status}`);
  };

  it('429 over the per-address limit, 503 over the total, 403 for an Origin not allowed', async () => {
    await withServer({ maxConnectionsPerAddress: 1 }, async (server) => {
      const first = await connect(server.url, { WebSocket });
      await assert.rejects(connect(server.url, { WebSocket }), refusedWith(429));
      first.close();
    });
    await withServer({ maxConnections: 1 }, async (server) => {
      const first = await connect(server.url, { WebSocket });
      await assert.rejects(connect(server.url, { WebSocket }), refusedWith(503));
      first.close();
    });
    await withServer({ access: { origins: ['https://viewer.example'] } }, async (server) => {
      class Elsewhere extends WebSocket {
        constructor(url: string) { super(url, { origin: 'https://evil.example' }); }
      }
      await assert.rejects(connect(server.url, { WebSocket: Elsewhere as unknown as typeof WebSocket }), (e) => {
        assert.ok(refusedWith(403)(e), String(e));
        assert.match((e as Error).message, /Origin is not allowed/);
        return true;
      });
    });
    // No status where there was no HTTP answer at all.
    const closedPort = await new Promise<number>((resolve) => {
      const s = createTcpServer().listen(0, '127.0.0.1', () => { const { port } = s.address() as { port: number }; s.close(() => resolve(port)); });
    });
    await assert.rejects(connect(`ws://127.0.0.1:${closedPort}/`, { WebSocket }), (e) => e instanceof ConnectionError && e.status === undefined && /ECONNREFUSED/.test(e.message));
  });

  it('reconnecting, a 429 or 503 is tried again with backoff; a 403 or 401 ends it at once', async () => {
    assert.deepEqual([429, 503, 502, 408, undefined].map(retryableStatus), [true, true, true, true, true]);
    assert.deepEqual([401, 403, 404, 400].map(retryableStatus), [false, false, false, false]);
    await withServer({}, async (server: RunningServer) => {
      const gate = await new Gate(server.port).listen();
      try {
        const c = await connect(gate.url, { WebSocket, reconnect: { maxAttempts: 5, initialDelayMs: 10, maxDelayMs: 40 } });
        const seen: Array<{ state: ConnectionState; status: number | undefined; code: string | undefined }> = [];
        const reached = (state: ConnectionState) => new Promise<void>((resolve) => {
          const stop = c.onStateChange((s) => { if (s === state) { stop(); resolve(); } });
        });
        c.onStateChange((state, { error }) => seen.push({ state, status: (error as ConnectionError | undefined)?.status, code: (error as ConnectionError | undefined)?.code }));

        // Too many connections, twice: tried again, and in once there is room.
        gate.refuseWith = 429;
        gate.refuseAtMost = 2;
        const open = reached('open');
        gate.cut();
        await settles(open, 'the client to reconnect');
        assert.deepEqual(seen.map((s) => [s.state, s.status]), [['reconnecting', undefined], ['reconnecting', 429], ['reconnecting', 429], ['open', undefined]]);
        assert.ok((await c.listStudies()).length > 0);

        // The server refuses for good: one attempt, then the client stops, saying why.
        seen.length = 0;
        gate.refused = 0;
        gate.refuseWith = 403;
        gate.refuseAtMost = Infinity;
        const closed = reached('closed');
        gate.cut();
        await settles(closed, 'the client to give up');
        assert.equal(gate.refused, 1, 'one attempt only');
        const last = seen.at(-1)!;
        assert.deepEqual([last.state, last.code, last.status], ['closed', 'CONNECTION_CLOSED', 403]);
      } finally {
        await gate.close();
      }
    });
  });
});

describe('log throttle (unit)', () => {
  it('writes a kind of warning once an interval, then says how many were left out', () => {
    const written: Array<{ msg: string; suppressed?: number }> = [];
    const log = createLogger('warn', (line) => written.push(JSON.parse(line) as { msg: string; suppressed?: number }));
    let now = 0;
    const throttle = new LogThrottle(log, 1000, () => now);
    for (let i = 0; i < 5; i++) throttle.warn('a', {});
    throttle.warn('b', {});
    now = 1000;
    throttle.warn('a', {});
    assert.deepEqual(written.map((w) => [w.msg, w.suppressed]), [['a', undefined], ['b', undefined], ['a', 4]]);
  });
});
