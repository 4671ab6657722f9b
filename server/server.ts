// The server: indexes a folder, then serves the WebSocket protocol, the demo page, health checks
// and metrics on one HTTP (or HTTPS) server.
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { existsSync, realpathSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { indexedTransferSyntaxes } from '../shared/transfer-syntax.js';
import { AccessControl, bearerToken, type AccessPolicy } from './access.js';
import type { CatalogueIndex } from '../shared/index-format.js';
import { Catalogue, type CatalogueCacheStats } from './index/catalogue.js';
import type { IndexedFile } from './index/index-file.js';
import { DEFAULT_INDEX_DIR, IndexStore, MemorySeriesSource } from './index/index-store.js';
import { DEFAULT_PARSE_WORKERS, ParsePool } from './index/parse-pool.js';
import { refreshIndex, relativePath, summaryOf, type IndexSummary, type RefreshProgress, type RefreshResult } from './index/refresh.js';
import { watchFolder, type FolderWatcher } from './index/watch.js';
import { FrameCache } from './files/frame-cache.js';
import { FrameReader } from './files/frame-reader.js';
import { HandlePool } from './files/handle-pool.js';
import { createLogger, type Logger } from './log.js';
import type { MetricSources, ServerMetrics } from './metrics.js';
import { ConnectionFront, type ConnectionLimits } from './transport/connections.js';
import { SessionAccess } from './transport/session-access.js';
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
  /** Client messages a connection may send per second (bursts of twice that); 0: no limit. */
  maxMessagesPerSecond?: number;
  /** Frames queued at most per connection, over all its open requests, and over all connections. */
  maxQueuedFrames?: number;
  maxQueuedFramesInAll?: number;
  /** Open connections at most, in all and from one address. */
  maxConnections?: number;
  maxConnectionsPerAddress?: number;
  /** Ping every this many ms and cut peers that did not answer the last ping; 0: never. */
  heartbeatMs?: number;
  /** Who may connect and see what. Required unless `host` is a loopback address. */
  access?: AccessPolicy;
  /** Serve https:// and wss:// with this certificate and key (PEM). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Follow symbolic links that point outside `root` (refused by default). */
  followSymlinksOutside?: boolean;
  log?: Logger;
  onIndexProgress?: (progress: RefreshProgress) => void;
}

export type { IndexSummary };

export interface RunningServer {
  /** ws://host:port/ (wss:// with TLS) */
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
  /** Prometheus text of every metric (what /metrics serves). */
  metrics(): Promise<string>;
  /**
   * Stops: refuses new connections, lets frames in flight finish for up to `deadlineMs` (default
   * 10 s), then closes every connection with 1001, file handles and parser threads.
   */
  close(options?: { deadlineMs?: number }): Promise<void>;
}

export const DEFAULT_LIMITS: SessionLimits = {
  chunkBytes: 256 * 1024,
  maxBufferedBytes: 1024 * 1024,
  maxFramesPerRequest: 100_000,
  maxOpenRequests: 1024,
  maxPageSize: 500,
  maxMessageBytes: 4 * 1024 * 1024,
  maxMessagesPerSecond: 1000,
  maxQueuedFrames: 100_000,
  maxQueuedFramesInAll: 1_000_000,
};

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxConnections: 1024,
  maxConnectionsPerAddress: 256,
  heartbeatMs: 30_000,
  maxMessageBytes: DEFAULT_LIMITS.maxMessageBytes,
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
  // Before anything else: a server on a public address without a policy does not start.
  const host = options.host ?? '127.0.0.1';
  const access = new AccessControl(options.access ?? {}, host);
  if (!existsSync(root)) throw new Error(`no such folder: ${root}`);
  const parser = new ParsePool(options.parseWorkers ?? DEFAULT_PARSE_WORKERS);
  const indexDir = await writableIndexDir(root, options.indexDir, log);
  const store = indexDir ? new IndexStore(root, indexDir, (path) => parser.parse(path, true), (file, reason) => {
    log.warn('index file not trusted: rebuilt from the DICOM files', { file, reason });
  }) : undefined;
  // Without a saved index, parsed entries stay here.
  const inMemory = new Map<string, IndexedFile>();
  const makeCatalogue = (index: CatalogueIndex): Catalogue => new Catalogue(index,
    store ?? new MemorySeriesSource(inMemory.values()), { cacheBytes: options.indexCacheBytes ?? 64 * 1024 * 1024 });
  const absorb = (r: RefreshResult): void => {
    if (store) return;
    const live = new Set(r.index.instances.map((i) => i.file.path));
    for (const path of inMemory.keys()) if (!live.has(path)) inMemory.delete(path);
    for (const f of r.parsedFiles) inMemory.set(f.path, f);
  };
  let last: RefreshResult;
  try {
    last = await refreshIndex(root, await store?.readCatalogue(), parser, store, {
      onProgress: options.onIndexProgress, followSymlinksOutside: options.followSymlinksOutside,
    });
  } finally {
    await parser.idle();
  }
  absorb(last);
  let catalogue = makeCatalogue(last.index);
  let summary = summaryOf(root, last, indexDir);
  const limits: SessionLimits = {
    chunkBytes: options.chunkBytes ?? DEFAULT_LIMITS.chunkBytes,
    maxBufferedBytes: options.maxBufferedBytes ?? DEFAULT_LIMITS.maxBufferedBytes,
    maxFramesPerRequest: options.maxFramesPerRequest ?? DEFAULT_LIMITS.maxFramesPerRequest,
    maxOpenRequests: options.maxOpenRequests ?? DEFAULT_LIMITS.maxOpenRequests,
    maxPageSize: options.maxPageSize ?? DEFAULT_LIMITS.maxPageSize,
    maxMessageBytes: options.maxMessageBytes ?? DEFAULT_LIMITS.maxMessageBytes,
    maxMessagesPerSecond: options.maxMessagesPerSecond ?? DEFAULT_LIMITS.maxMessagesPerSecond,
    maxQueuedFrames: options.maxQueuedFrames ?? DEFAULT_LIMITS.maxQueuedFrames,
    maxQueuedFramesInAll: options.maxQueuedFramesInAll ?? DEFAULT_LIMITS.maxQueuedFramesInAll,
  };
  if (!(limits.chunkBytes >= 1024)) throw new RangeError('chunk size must be at least 1024 bytes');
  // Reads stay inside the served folder (its real path) unless links out are allowed.
  const pool = new HandlePool({ maxOpen: options.maxOpenFiles ?? 512, confineTo: options.followSymlinksOutside ? undefined : realpathSync(root) });
  const reader = new FrameReader({ pool });
  const stats = { connections: 0, framesSent: 0, bytesSent: 0, errors: 0, maxBufferedBytes: 0 };
  const transferSyntaxes = indexedTransferSyntaxes();
  // Room for a chunk and its header (attributes with small LUTs); larger headers get their own buffer.
  // Room for a chunk and its header; 16 kept for reuse (a few MB), more are allocated as needed.
  const buffers = new ChunkBuffers(limits.chunkBytes + 16 * 1024, 16);
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
    const r = await refreshIndex(root, last.index, parser, store, { followSymlinksOutside: options.followSymlinksOutside })
      .finally(() => parser.idle());
    const before = catalogue;
    last = r;
    summary = summaryOf(root, r, indexDir);
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

  let ready = false;
  let front: ConnectionFront | undefined;
  const metrics = lateMetrics({
    connections: () => stats.connections,
    stats: () => stats,
    frameCache: () => cache.stats,
    indexCache: () => catalogue.cacheStats,
    index: () => ({
      studies: catalogue.studyCount, series: catalogue.seriesCount, instances: catalogue.instanceCount, frames: catalogue.frameCount,
      files: summary.files, skipped: summary.skipped.length,
    }),
  });
  const serveStatic = staticFiles();
  const plain = (res: ServerResponse, status: number, text: string) => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(text);
  };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') return plain(res, 200, 'ok\n');
    if (path === '/readyz') return ready ? plain(res, 200, 'ready\n') : plain(res, 503, 'not ready\n');
    if (path === '/metrics') {
      metrics.load();
      void metrics.ready.then((m) => m.registry.metrics().then((text) => {
        res.writeHead(200, { 'content-type': m.registry.contentType });
        res.end(text);
      })).catch(() => plain(res, 500, 'metrics failed\n'));
      return;
    }
    if (serveStatic(req, res)) return;
    if (path === '/favicon.ico') {
      res.writeHead(204);
      res.end();
      return;
    }
    if (path === '/') return plain(res, 200, `${SERVER_NAME}: connect a WebSocket to this address (the viewer is not built: npm run build).\n`);
    plain(res, 404, 'not found\n');
  };
  const http: HttpServer = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, handler) : createHttpServer(handler);
  let nextConnection = 1;
  const connectionLimits: ConnectionLimits = {
    maxConnections: options.maxConnections ?? DEFAULT_CONNECTION_LIMITS.maxConnections,
    maxConnectionsPerAddress: options.maxConnectionsPerAddress ?? DEFAULT_CONNECTION_LIMITS.maxConnectionsPerAddress,
    heartbeatMs: options.heartbeatMs ?? DEFAULT_CONNECTION_LIMITS.heartbeatMs,
    maxMessageBytes: limits.maxMessageBytes,
  };
  front = new ConnectionFront(http, {
    limits: connectionLimits,
    originAllowed: (origin) => access.originAllowed(origin),
    log,
    onRefused: (reason) => metrics.connectionRefused(reason),
    onConnection: (ws, req) => {
      const id = nextConnection++;
      const clog = log.child({ conn: id });
      stats.connections++;
      metrics.connectionOpened();
      const from = req.socket.remoteAddress ?? '';
      clog.debug('connected', { from });
      const sessionAccess = new SessionAccess(access, { remoteAddress: from, origin: req.headers.origin, headers: req.headers }, bearerToken(req.headers));
      const session = new Session(id, ws, {
        catalogue: () => catalogue, scheduler, kick: () => pump.kick(), readChunk, readahead, limits, serverName: SERVER_NAME, transferSyntaxes, stats, buffers,
        queuedFramesInAll: () => scheduler.queuedFramesInAll(),
        observe: { error: (code) => metrics.error(code), frameSent: (seconds) => metrics.frameSent(seconds) },
      }, clog, sessionAccess);
      sessions.set(id, session);
      ws.on('message', (data, isBinary) => {
        const bytes = Array.isArray(data) ? Buffer.concat(data) : data instanceof ArrayBuffer ? new Uint8Array(data) : data;
        session.onMessage(bytes, isBinary);
      });
      // A protocol violation (e.g. a message over maxPayload) closes the socket; ws reports it here.
      ws.on('error', (e) => clog.warn('socket error', { error: e.message }));
      ws.on('close', (code) => {
        stats.connections--;
        session.onClose();
        sessions.delete(id);
        clog.debug('closed', { code });
      });
    },
  });

  await new Promise<void>((resolveListen, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 8080, host, () => resolveListen());
  });
  ready = true;
  // prom-client loads on the first scrape or a few seconds after start, not while the first
  // clients connect.
  setTimeout(() => metrics.load(), 3000).unref();
  const address = http.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const openRequests = () => [...sessions.keys()].reduce((n, id) => n + scheduler.openRequests(id), 0);
  let closing: Promise<void> | undefined;
  const close = async (deadlineMs: number): Promise<void> => {
    ready = false;
    front!.stopAccepting();
    const stopped = new Promise<void>((r) => http.close(() => r()));
    watcher?.close();
    // Frames in flight finish, up to the deadline; what is left is cancelled by the close.
    const end = Date.now() + deadlineMs;
    while (openRequests() > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    const cancelled = openRequests();
    if (cancelled) log.warn('shutdown deadline reached: open requests cancelled', { requests: cancelled });
    await front!.closeAll(1001, 'server shutting down');
    http.closeAllConnections?.();
    await stopped;
    await refreshing;
    await reader.close();
    await parser.close();
  };
  return {
    url: `${options.tls ? 'wss' : 'ws'}://${urlHost}:${address.port}/`,
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
    metrics: () => {
      metrics.load();
      return metrics.ready.then((m) => m.registry.metrics());
    },
    close: (o = {}) => (closing ??= close(o.deadlineMs ?? 10_000)),
  };
}

/**
 * Metrics whose module (and prom-client) loads once the server listens, off the path to the first
 * frame; what happens before is recorded and replayed then.
 */
function lateMetrics(sources: MetricSources): Pick<ServerMetrics, 'connectionOpened' | 'connectionRefused' | 'error' | 'frameSent'> & {
  ready: Promise<ServerMetrics>;
  load(): void;
} {
  let metrics: ServerMetrics | undefined;
  const early: Array<(m: ServerMetrics) => void> = [];
  // Once loaded, events go straight through (no closure per frame sent).
  const later = (event: (m: ServerMetrics) => void) => { if (early.length < 100_000) early.push(event); };
  let start!: () => void;
  const started = new Promise<void>((resolve) => { start = resolve; });
  const ready = started.then(() => import('./metrics.js')).then(({ createMetrics }) => {
    metrics = createMetrics(sources);
    for (const event of early.splice(0)) event(metrics);
    return metrics;
  });
  return {
    ready,
    load: () => start(),
    connectionOpened: () => (metrics ? metrics.connectionOpened() : later((m) => m.connectionOpened())),
    connectionRefused: (reason) => (metrics ? metrics.connectionRefused(reason) : later((m) => m.connectionRefused(reason))),
    error: (code) => (metrics ? metrics.error(code) : later((m) => m.error(code))),
    frameSent: (seconds) => (metrics ? metrics.frameSent(seconds) : later((m) => m.frameSent(seconds))),
  };
}
