// startServer composes the stages: the live index (index/), the frame source with its cache
// (files/), the stream handler (transport/) and the HTTP routes (health, readiness, metrics,
// viewer). It listens on a port of its own, or mounts on an embedder's HTTP server under a path
// (as `ws` does with `server` + `path`), or only hands out `handleUpgrade` (`noServer`).
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { CodedError } from '../shared/coded-error.js';
import { indexedTransferSyntaxes } from '../shared/transfer-syntax.js';
import { AccessControl, isLoopback, type AccessPolicy } from './access.js';
import type { Catalogue, CatalogueCacheStats } from './index/catalogue.js';
import { LiveIndex } from './index/live-index.js';
import type { IndexSummary, RefreshProgress } from './index/refresh.js';
import { FrameSource } from './files/frame-source.js';
import type { FrameCacheStats } from './files/frame-cache.js';
import type { HandlePoolStats } from './files/handle-pool.js';
import { httpRoutes, type RequestHandler } from './http-routes.js';
import { lateMetrics } from './late-metrics.js';
import { createLogger, type Logger } from './log.js';
import { withDefaults, type ResolvedOptions, type TableOptions } from './options.js';
import type { ConnectionLimits } from './transport/connections.js';
import type { SessionLimits } from './transport/session.js';
import { StreamHandler, type StreamStats } from './transport/stream-handler.js';

export const SERVER_NAME = 'dicomstream/0.1.0';

/**
 * The options of the options table (server/options.ts; the README lists them: each is a
 * `dicomstream serve` flag camel-cased, in the same unit), and those only the API has.
 */
export interface ServerOptions extends Omit<TableOptions, 'indexDir'> {
  /** Folder of DICOM files, scanned recursively. */
  root: string;
  /** Where the parser index is saved: default `<root>/.dicomstream`; false: in memory only. */
  indexDir?: string | false;
  /** Who may connect and see what. Required unless the server listens on a loopback address. */
  access?: AccessPolicy;
  /** Serve https:// and wss:// with this certificate and key (PEM). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /**
   * Mount on this HTTP(S) server instead of listening on a port: upgrades to `path` are
   * dicomstream's, every other request and upgrade is left to the server's own handlers.
   */
  server?: HttpServer | HttpsServer;
  /** With `server`: the path the stream (and `handleRequest`'s routes) live under. Default '/'. */
  path?: string;
  /** Neither listen nor mount: the embedder calls `handleUpgrade` (and `handleRequest`) itself. */
  noServer?: boolean;
  log?: Logger;
  onIndexProgress?: (progress: RefreshProgress) => void;
}

export type { IndexSummary };

export interface RunningServer {
  /** ws://host:port/path (wss:// with TLS); '' while a mounted server does not listen. */
  readonly url: string;
  /** 0 while a mounted server does not listen. */
  readonly port: number;
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
  stats: StreamStats;
  /** Open handles and opens/closes so far. */
  files: HandlePoolStats;
  /** Frame cache counters: hits, misses, evictions, bytes, reads, coalesced, prefetched. */
  cache: () => FrameCacheStats;
  /** Prometheus text of every metric (what /metrics serves). */
  metrics(): Promise<string>;
  /** Takes an HTTP upgrade as a dicomstream connection (for `noServer`, or any routing of one's own). */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void;
  /**
   * Answers `/healthz`, `/readyz`, `/metrics` (under `path` when mounted; with the viewer page when
   * the server listens on its own port) and returns true, or returns false and leaves the request alone.
   */
  handleRequest(request: IncomingMessage, response: ServerResponse): boolean;
  /**
   * Stops: refuses new connections, lets frames in flight finish for up to `deadlineMs` (default
   * `shutdownTimeout`), then closes every connection with 1001, file handles and parser threads.
   * A mounted server's own HTTP server is left open.
   */
  close(options?: { deadlineMs?: number }): Promise<void>;
}

/** What the server enforces per connection, from the options' defaults (announced in Welcome). */
export const DEFAULT_LIMITS: SessionLimits = sessionLimits(withDefaults({}));
export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = connectionLimits(withDefaults({}));

function sessionLimits(o: ResolvedOptions): SessionLimits {
  return {
    chunkBytes: o.chunkSize, maxBufferedBytes: o.maxBuffered, maxFramesPerRequest: o.maxFramesPerRequest,
    maxOpenRequests: o.maxOpenRequests, maxPageSize: o.maxPageSize, maxMessageBytes: o.maxMessageSize,
    maxMessagesPerSecond: o.rateLimit, maxQueuedFrames: o.maxQueuedFrames, maxQueuedFramesInAll: o.maxQueuedFramesTotal,
  };
}

function connectionLimits(o: ResolvedOptions): ConnectionLimits {
  return {
    maxConnections: o.maxConnections, maxConnectionsPerAddress: o.maxConnectionsPerAddress,
    heartbeatMs: o.heartbeat * 1000, maxMessageBytes: o.maxMessageSize,
  };
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const o = withDefaults(options);
  const log = options.log ?? createLogger('info');
  const root = resolve(options.root);
  const mounted = options.server;
  const base = normalisePath(options.path);
  // Before anything else: a server on a public address without a policy does not start.
  const host = mounted ? listeningHost(mounted) ?? '127.0.0.1' : o.host;
  const access = new AccessControl(options.access ?? {}, host);
  if (!existsSync(root)) throw new CodedError('NO_SUCH_FOLDER', `no such folder: ${root}`);
  if (!(o.chunkSize >= 1024)) throw new CodedError('BAD_OPTION', 'chunk size must be at least 1024 bytes');

  const index = await LiveIndex.open({
    root, indexDir: options.indexDir, indexCacheBytes: o.indexCache, parseWorkers: o.parseWorkers, followSymlinks: o.followSymlinks,
    watch: o.watch, rescanMs: o.rescanInterval * 1000, log, onProgress: options.onIndexProgress,
  });
  const frames = new FrameSource({
    root, followSymlinks: o.followSymlinks, maxOpenFiles: o.maxOpenFiles, frameCacheBytes: o.frameCache,
    readConcurrency: o.readConcurrency, readahead: o.readahead,
  });
  const metrics = lateMetrics({
    connections: () => stream.stats.connections,
    stats: () => stream.stats,
    frameCache: () => frames.cacheStats,
    indexCache: () => index.catalogue.cacheStats,
    index: () => {
      const c = index.catalogue;
      return { studies: c.studyCount, series: c.seriesCount, instances: c.instanceCount, frames: c.frameCount, files: index.summary.files, skipped: index.summary.skipped.length };
    },
  });
  const stream = new StreamHandler({
    catalogue: () => index.catalogue,
    readChunk: (frame, offset, length, into, at, next) => frames.readChunk(frame, offset, length, into, at, next),
    readahead: frames.readahead, readConcurrency: o.readConcurrency,
    limits: sessionLimits(o), connectionLimits: connectionLimits(o), access,
    serverName: SERVER_NAME, transferSyntaxes: indexedTransferSyntaxes(), log, observe: metrics,
  });
  index.onChange = (change) => {
    for (const path of change.staleFiles) frames.forget(path);
    stream.seriesUpdated(change.series);
  };

  let ready = false;
  const routes: RequestHandler = httpRoutes({ base, serverName: SERVER_NAME, ready: () => ready, metrics, viewer: !mounted && !options.noServer });
  let http: HttpServer | undefined;
  let detach = () => {};
  if (mounted) {
    detach = mount(mounted, base, (req, socket, head) => stream.handleUpgrade(req, socket, head), options.access ?? {}, log);
  } else if (!options.noServer) {
    const notFound = (req: IncomingMessage, res: ServerResponse) => {
      if (routes(req, res)) return;
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('not found\n');
    };
    http = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, notFound) : createHttpServer(notFound);
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => stream.handleUpgrade(req, socket, head));
    const server = http;
    await new Promise<void>((resolveListen, reject) => {
      server.once('error', reject);
      server.listen(o.port, o.host, () => { server.off('error', reject); resolveListen(); });
    });
  }
  ready = true;
  // prom-client loads on the first scrape or a few seconds after start, not while the first
  // clients connect.
  setTimeout(() => metrics.load(), 3000).unref();

  const addressed = http ?? mounted;
  const secure = Boolean(options.tls) || (mounted !== undefined && 'setSecureContext' in mounted);
  const urlOf = (): { url: string; port: number } => {
    const address = addressed?.address() as AddressInfo | null | undefined;
    if (!address || typeof address !== 'object') return { url: '', port: 0 };
    const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return { url: `${secure ? 'wss' : 'ws'}://${urlHost}:${address.port}${base}/`, port: address.port };
  };
  let closing: Promise<void> | undefined;
  const close = async (deadlineMs: number): Promise<void> => {
    ready = false;
    detach();
    const stopped = http ? new Promise<void>((r) => http!.close(() => r())) : Promise.resolve();
    // Frames in flight finish, up to the deadline; what is left is cancelled by the close.
    const cancelled = await stream.drain(Date.now() + deadlineMs);
    if (cancelled) log.warn('shutdown deadline reached: open requests cancelled', { requests: cancelled });
    http?.closeAllConnections?.();
    await stopped;
    await index.close();
    await frames.close();
  };
  return {
    get url() { return urlOf().url; },
    get port() { return urlOf().port; },
    get catalogue() { return index.catalogue; },
    get index() { return index.summary; },
    get parses() { return index.parses; },
    refresh: () => index.refreshNow(),
    stats: stream.stats,
    files: frames.files,
    cache: () => frames.cacheStats,
    indexCache: () => index.catalogue.cacheStats,
    metrics: () => metrics.text().then((m) => m.text),
    handleUpgrade: (req, socket, head) => stream.handleUpgrade(req, socket, head),
    handleRequest: routes,
    close: (c = {}) => (closing ??= close(c.deadlineMs ?? o.shutdownTimeout * 1000)),
  };
}

/** '' for the root, else '/a/b' (no trailing slash). */
function normalisePath(path: string | undefined): string {
  const p = (path ?? '').replace(/\/+$/, '');
  if (p && !p.startsWith('/')) throw new CodedError('BAD_OPTION', `path must start with '/': ${path}`);
  return p;
}

function listeningHost(server: HttpServer | HttpsServer): string | undefined {
  const address = server.address();
  return address && typeof address === 'object' ? address.address : undefined;
}

/**
 * Takes the upgrades to `base` (and `base/`) on an embedder's server. Other upgrades are left to
 * the server's other 'upgrade' listeners; with none, they get 404 rather than hanging. When the
 * server starts listening on a public address without an access policy, every upgrade is refused.
 */
function mount(
  server: HttpServer | HttpsServer, base: string, upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void,
  policy: AccessPolicy, log: Logger,
): () => void {
  let publicWithoutPolicy = false;
  const onListening = () => {
    const host = listeningHost(server);
    if (host === undefined || isLoopback(host)) return;
    try {
      new AccessControl(policy, host);
    } catch (e) {
      publicWithoutPolicy = true;
      log.error('the server listens on a public address without an access policy: dicomstream refuses every connection', { host, error: (e as Error).message });
    }
  };
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const ours = path === (base || '/') || path === `${base}/`;
    if (!ours) {
      if (server.listenerCount('upgrade') === 1) socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    if (publicWithoutPolicy) {
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    upgrade(req, socket, head);
  };
  if (server.listening) onListening();
  else server.once('listening', onListening);
  server.on('upgrade', onUpgrade);
  return () => {
    server.off('upgrade', onUpgrade);
    server.off('listening', onListening);
  };
}
