// The server: indexes a folder, then serves the WebSocket protocol (and, later, the demo page)
// on one HTTP server.
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { indexedTransferSyntaxes } from '../shared/transfer-syntax.js';
import type { CatalogueIndex } from '../shared/index-format.js';
import { Catalogue, type CatalogueCacheStats } from './index/catalogue.js';
import type { IndexedFile } from './index/index-file.js';
import { DEFAULT_INDEX_DIR, IndexStore, MemorySeriesSource } from './index/index-store.js';
import { DEFAULT_PARSE_WORKERS, ParsePool } from './index/parse-pool.js';
import { refreshIndex, relativePath, type RefreshProgress, type RefreshResult } from './index/refresh.js';
import type { SkippedFile } from './index/scan.js';
import { watchFolder, type FolderWatcher } from './index/watch.js';
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
  /**
   * Where the parser index is saved: default `<root>/.dicomstream`; false: keep it in memory only.
   * When the folder cannot be written, the index is kept in memory (a warning says so).
   */
  indexDir?: string | false;
  /** Bytes of opened series' index entries kept in memory. */
  indexCacheBytes?: number;
  /** Worker threads parsing files for a large (re)index; 0: parse in the main thread. */
  parseWorkers?: number;
  /** Pick up files added, replaced or deleted while serving (default true). */
  watch?: boolean;
  /** With `watch`: also rescan at this interval, in ms (default 60 000; 0: never). */
  rescanMs?: number;
  log?: Logger;
  onIndexProgress?: (progress: RefreshProgress) => void;
}

/** What the last index refresh found. */
export interface IndexSummary {
  /** Files under the folder, and of them: parsed in that refresh, reused unchanged from the index. */
  files: number;
  parsed: number;
  reused: number;
  removed: number;
  skipped: SkippedFile[];
  ms: number;
  /** Where the index is saved; undefined: in memory only. */
  indexDir: string | undefined;
}

export interface RunningServer {
  /** ws://host:port/ */
  url: string;
  port: number;
  /** The current catalogue (replaced when the folder changes). */
  readonly catalogue: Catalogue;
  /** The last index refresh. */
  readonly index: IndexSummary;
  /** Refreshes the index now (the watcher does it on its own); resolves when the catalogue is current. */
  refresh(): Promise<IndexSummary>;
  /** DICOM files parsed since start (a restart on an unchanged folder parses none). */
  readonly parses: number;
  /** Opened-series index cache counters. */
  indexCache: () => CatalogueCacheStats;
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

/** The index folder when it can be written, else undefined (the index then lives in memory). */
async function writableIndexDir(root: string, indexDir: string | false | undefined, log: Logger): Promise<string | undefined> {
  if (indexDir === false) return undefined;
  const dir = resolve(root, indexDir ?? DEFAULT_INDEX_DIR);
  try {
    await mkdir(dir, { recursive: true });
    const probe = join(dir, `.probe-${process.pid}`);
    await writeFile(probe, '');
    await rm(probe, { force: true });
    return dir;
  } catch (e) {
    log.warn('index folder cannot be written: the index is kept in memory only (use --index-dir)', { dir, error: (e as Error).message });
    return undefined;
  }
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const log = options.log ?? createLogger('info');
  const root = resolve(options.root);
  const parser = new ParsePool(options.parseWorkers ?? DEFAULT_PARSE_WORKERS);
  const indexDir = await writableIndexDir(root, options.indexDir, log);
  const store = indexDir ? new IndexStore(root, indexDir, (path) => parser.parse(path, true), (file, reason) => {
    log.warn('index file not trusted: rebuilt from the DICOM files', { file, reason });
  }) : undefined;
  // Without a saved index, parsed entries stay here.
  const inMemory = new Map<string, IndexedFile>();
  const makeCatalogue = (index: CatalogueIndex): Catalogue => new Catalogue(index,
    store ?? new MemorySeriesSource(inMemory.values()), { cacheBytes: options.indexCacheBytes ?? 64 * 1024 * 1024 });
  const summarize = (r: RefreshResult): IndexSummary => ({
    files: r.files, parsed: r.parsed, reused: r.reused, removed: r.removed, ms: r.ms, indexDir,
    skipped: r.index.skipped.map((k) => ({ path: relativePath(root, k.file.path), code: k.code as SkippedFile['code'], reason: k.reason })),
  });
  const absorb = (r: RefreshResult): void => {
    if (store) return;
    const live = new Set(r.index.instances.map((i) => i.file.path));
    for (const path of inMemory.keys()) if (!live.has(path)) inMemory.delete(path);
    for (const f of r.parsedFiles) inMemory.set(f.path, f);
  };
  let last: RefreshResult;
  try {
    last = await refreshIndex(root, await store?.readCatalogue(), parser, store, { onProgress: options.onIndexProgress });
  } finally {
    await parser.idle();
  }
  absorb(last);
  let catalogue = makeCatalogue(last.index);
  let summary = summarize(last);
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

  // Live changes: one refresh at a time; a change seen during one runs another after it.
  let refreshing: Promise<void> | undefined;
  let again = false;
  const refreshOnce = async (): Promise<void> => {
    const r = await refreshIndex(root, last.index, parser, store).finally(() => parser.idle());
    const before = catalogue;
    last = r;
    summary = summarize(r);
    if (r.parsed === 0 && r.removed === 0 && r.changedSeries.size === 0) return;
    absorb(r);
    const next = makeCatalogue(r.index);
    const live = new Set(r.index.instances.map((i) => i.file.path));
    const kept = new Set<string>();
    for (const i of r.index.instances) kept.add(`${i.file.path}\0${i.file.size}\0${i.file.mtimeMs}`);
    for (const old of before.allRecords()) {
      // A file replaced or deleted: its open handle (of the old file) must not serve reads.
      if (!kept.has(`${old.file.path}\0${old.file.size}\0${old.file.mtimeMs}`)) pool.forget(old.file.path);
      if (!live.has(old.file.path) && !next.record(old.sopInstanceUid)) next.markGone(old.sopInstanceUid, relativePath(root, old.file.path));
    }
    next.adopt(before, r.changedSeries);
    catalogue = next;
    log.info('index refreshed', { parsed: r.parsed, removed: r.removed, series: r.changedSeries.size, ms: Math.round(r.ms) });
    for (const uid of r.changedSeries) {
      const removed = !next.hasSeries(uid);
      for (const session of sessions.values()) session.seriesUpdated(uid, removed);
    }
  };
  const refresh = (): Promise<void> => {
    if (refreshing) {
      again = true;
      return refreshing;
    }
    refreshing = (async () => {
      do {
        again = false;
        await refreshOnce().catch((e: unknown) => log.error('index refresh failed', { error: (e as Error).message }));
      } while (again);
    })().finally(() => { refreshing = undefined; });
    return refreshing;
  };
  const watcher: FolderWatcher | undefined = options.watch === false ? undefined : watchFolder(root, () => void refresh(), {
    rescanMs: options.rescanMs, onError: (e) => log.warn('folder watch failed: rescanning periodically only', { error: e.message }),
  });

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
    get catalogue() { return catalogue; },
    get index() { return summary; },
    get parses() { return parser.parsed; },
    refresh: async () => {
      again = again || refreshing !== undefined;
      await refresh();
      return summary;
    },
    stats,
    files: pool.stats,
    cache: () => cache.stats,
    indexCache: () => catalogue.cacheStats,
    close: async () => {
      watcher?.close();
      await refreshing;
      await closeAll(http, wss, sockets, reader);
      await parser.close();
    },
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
