// The server: indexes a folder, then serves the WebSocket protocol (and, later, the demo page)
// on one HTTP server.
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { indexedTransferSyntaxes } from '../shared/transfer-syntax.js';
import { Catalogue } from './index/catalogue.js';
import { scanFolder, type ScanResult } from './index/scan.js';
import { FrameCache } from './files/frame-cache.js';
import { FrameReader } from './files/frame-reader.js';
import { HandlePool } from './files/handle-pool.js';
import { createLogger, type Logger } from './log.js';
import { ChunkBuffers } from './transport/chunk-buffers.js';
import { Pump } from './transport/pump.js';
import { Scheduler } from './transport/scheduler.js';
import { Session, type QueuedFrame, type SessionLimits } from './transport/session.js';
import { staticFiles } from './static-files.js';

export const SERVER_NAME = 'dicomstream/0.1.0';

export interface ServerOptions {
  /** Folder of DICOM files, scanned recursively. */
  root: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  chunkBytes?: number;
  /** Unsent bytes held per connection at most. */
  maxBufferedBytes?: number;
  maxMessageBytes?: number;
  maxFramesPerRequest?: number;
  maxOpenRequests?: number;
  maxPageSize?: number;
  maxOpenFiles?: number;
  /** Disk reads at once, across all connections. */
  readConcurrency?: number;
  /** Bytes of frames kept in memory, shared by all connections (and read ahead into). */
  frameCacheBytes?: number;
  /** Frames read ahead for each group, beyond the one being sent. */
  readahead?: number;
  log?: Logger;
  onScanProgress?: (done: number, total: number) => void;
}

export interface RunningServer {
  /** ws://host:port/ */
  url: string;
  port: number;
  catalogue: Catalogue;
  scan: ScanResult;
  /** Counters; maxBufferedBytes is the most unsent data any one connection held. */
  stats: { connections: number; framesSent: number; bytesSent: number; errors: number; maxBufferedBytes: number };
  /** Open handles and opens/closes so far. */
  files: HandlePool['stats'];
  /** Frame cache counters: hits, misses, evictions, bytes, reads, coalesced, prefetched. */
  cache: () => FrameCache['stats'];
  close(): Promise<void>;
}

export const DEFAULT_LIMITS: SessionLimits = {
  chunkBytes: 256 * 1024,
  maxBufferedBytes: 1024 * 1024,
  maxFramesPerRequest: 100_000,
  maxOpenRequests: 1024,
  maxPageSize: 500,
  maxMessageBytes: 4 * 1024 * 1024,
};

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const log = options.log ?? createLogger('info');
  const root = resolve(options.root);
  const scan = await scanFolder(root, { onProgress: options.onScanProgress });
  const catalogue = new Catalogue(scan.files);
  const limits: SessionLimits = {
    chunkBytes: options.chunkBytes ?? DEFAULT_LIMITS.chunkBytes,
    maxBufferedBytes: options.maxBufferedBytes ?? DEFAULT_LIMITS.maxBufferedBytes,
    maxFramesPerRequest: options.maxFramesPerRequest ?? DEFAULT_LIMITS.maxFramesPerRequest,
    maxOpenRequests: options.maxOpenRequests ?? DEFAULT_LIMITS.maxOpenRequests,
    maxPageSize: options.maxPageSize ?? DEFAULT_LIMITS.maxPageSize,
    maxMessageBytes: options.maxMessageBytes ?? DEFAULT_LIMITS.maxMessageBytes,
  };
  if (!(limits.chunkBytes >= 1024)) throw new RangeError('chunk size must be at least 1024 bytes');
  const pool = new HandlePool({ maxOpen: options.maxOpenFiles ?? 512 });
  const reader = new FrameReader({ pool });
  const stats = { connections: 0, framesSent: 0, bytesSent: 0, errors: 0, maxBufferedBytes: 0 };
  const transferSyntaxes = indexedTransferSyntaxes();
  // Room for a chunk and its header (attributes with small LUTs); larger headers get their own buffer.
  const buffers = new ChunkBuffers(limits.chunkBytes + 16 * 1024);
  // One scheduler and one pump for all connections: weighted round-robin between clients needs
  // to see them all.
  const scheduler = new Scheduler<QueuedFrame>({ chunkBytes: limits.chunkBytes });
  const sessions = new Map<number, Session>();
  const pump = new Pump<QueuedFrame>(scheduler, sessions, options.readConcurrency ?? 4);
  // Frames go through the cache (read once however many clients want them, the next frames of
  // each group read ahead) when they are in it, being read, or fit without evicting anything.
  // Otherwise, and for frames over a quarter of it, the chunk is read straight from the file: a
  // series larger than the cache streams without churning it (scan resistance).
  const cache = new FrameCache({ reader, maxBytes: options.frameCacheBytes ?? 64 * 1024 * 1024, readConcurrency: options.readConcurrency ?? 4 });
  const readahead = options.readahead ?? 4;
  const readChunk = async (f: QueuedFrame, offset: number, length: number, into: Uint8Array, at: number, next: QueuedFrame[]) => {
    for (const n of next) if (n.location.length <= cache.maxFrameBytes) cache.prefetch(n.file, n.frameIndex);
    const viaCache = f.location.length <= cache.maxFrameBytes &&
      (cache.has(f.file, f.frameIndex) || cache.isLoading(f.file, f.frameIndex) || cache.fits(f.location.length));
    if (!viaCache) return reader.read(f.file, f.location, offset, length, into, at);
    const bytes = await cache.get(f.file, f.frameIndex);
    into.set(bytes.subarray(offset, offset + length), at);
  };

  const serveStatic = staticFiles();
  const http = createHttpServer((req, res) => {
    if (serveStatic(req, res)) return;
    if (req.url === '/favicon.ico') {
      res.writeHead(204);
      res.end();
      return;
    }
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`${SERVER_NAME}: connect a WebSocket to this address (the viewer is not built: npm run build).\n`);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('not found\n');
  });
  const wss = new WebSocketServer({ server: http, maxPayload: limits.maxMessageBytes, perMessageDeflate: false });
  let nextConnection = 1;
  const sockets = new Set<WebSocket>();
  wss.on('connection', (ws, req) => {
    const id = nextConnection++;
    const clog = log.child({ conn: id });
    stats.connections++;
    sockets.add(ws);
    clog.debug('connected', { from: req.socket.remoteAddress });
    const session = new Session(id, ws, {
      catalogue: () => catalogue, scheduler, kick: () => pump.kick(), readChunk, readahead, limits, serverName: SERVER_NAME, transferSyntaxes, stats, buffers,
    }, clog);
    sessions.set(id, session);
    ws.on('message', (data, isBinary) => {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : data instanceof ArrayBuffer ? new Uint8Array(data) : data;
      session.onMessage(bytes, isBinary);
    });
    // A protocol violation (e.g. a message over maxPayload) closes the socket; ws reports it here.
    ws.on('error', (e) => clog.warn('socket error', { error: e.message }));
    ws.on('close', (code) => {
      stats.connections--;
      sockets.delete(ws);
      session.onClose();
      sessions.delete(id);
      clog.debug('closed', { code });
    });
  });

  await new Promise<void>((resolveListen, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 8080, options.host ?? '127.0.0.1', () => resolveListen());
  });
  const address = http.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `ws://${host}:${address.port}/`,
    port: address.port,
    catalogue,
    scan,
    stats,
    files: pool.stats,
    cache: () => cache.stats,
    close: () => closeAll(http, wss, sockets, reader),
  };
}

async function closeAll(http: HttpServer, wss: WebSocketServer, sockets: Set<WebSocket>, reader: FrameReader): Promise<void> {
  for (const ws of sockets) ws.close(1001, 'server shutting down');
  await new Promise<void>((r) => wss.close(() => r()));
  // Sockets that do not finish the closing handshake are cut.
  for (const ws of sockets) ws.terminate();
  await new Promise<void>((r) => http.close(() => r()));
  await reader.close();
}
