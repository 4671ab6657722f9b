// startServer composes the stages: the live index (index/), the frame source with its cache
// (files/), the stream handler (transport/) and the HTTP routes (health, readiness, metrics,
// viewer). It listens on a port of its own, or mounts on an embedder's HTTP server under a path
// (as `ws` does with `server` + `path`), or only hands out `handleUpgrade` (`noServer`).
import { S3Archive, isS3Url } from './archive/s3.js';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { CodedError } from '../shared/coded-error.js';
import { indexedTransferSyntaxes } from '../shared/transfer-syntax.js';
import { AccessControl, type AccessPolicy } from './access.js';
import { clientAddressOf } from './client-address.js';
import type { Catalogue, CatalogueCacheStats } from './index/catalogue.js';
import { LiveIndex } from './index/live-index.js';
import type { IndexSummary, RefreshProgress } from './index/refresh.js';
import { FrameSource, type WholeFrameStats } from './files/frame-source.js';
import type { FrameCacheStats } from './files/frame-cache.js';
import type { HandlePoolStats } from './files/handle-pool.js';
import { attach, listeningHost, mountPath, type AttachTo, type UpgradeHandler } from './http-attachment.js';
import { dicomWebRoutes } from './dicomweb/routes.js';
import { httpRoutes, refuseUpgradeWhileStarting, startingRoutes, type RequestHandler } from './http-routes.js';
import { lateMetrics } from './late-metrics.js';
import { createLogger, type Logger } from './log.js';
import { checkBounds, withDefaults, type ResolvedOptions, type TableOptions } from './options.js';
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
  /** With `readOnlyIndex`: how often the saved catalogue is checked for a new version. Default 1000 ms. */
  indexPollMs?: number;
  /** How often an index that could not be saved (a full disk) is tried again. Default 10 000 ms. */
  saveRetryMs?: number;
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
  /**
   * What SIGHUP does: takes a new access policy (rotated token or keys) and TLS certificate when
   * given, for new connections (open ones go on), and refreshes the index.
   */
  reload(changes?: { access?: AccessPolicy; tls?: { cert: string | Buffer; key: string | Buffer } }): Promise<IndexSummary>;
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
  /** Whole frames read past the frame cache (DICOMweb): buffers allocated, reused and held; frames read ahead, taken, dropped. */
  wholeFrames: () => WholeFrameStats;
  /** Prometheus text of every metric (what /metrics serves). */
  metrics(): Promise<string>;
  /** Takes an HTTP upgrade as a dicomstream connection (for `noServer`, or any routing of one's own). */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void;
  /**
   * Answers the HTTP streams (`/http-stream`), DICOMweb, `/healthz`, `/readyz`, `/metrics` (under
   * `path` when mounted; with the viewer page when the server listens on its own port) and returns
   * true, or returns false and leaves the request alone.
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
    heartbeatMs: o.heartbeat * 1000, maxMessageBytes: o.maxMessageSize, handshakeTimeoutMs: o.handshakeTimeout * 1000,
  };
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const o = withDefaults(options);
  const log = options.log ?? createLogger('info');
  // An s3:// root is a store's objects, not a folder.
  const s3 = { endpoint: o.s3Endpoint || undefined, idleTimeoutMs: o.s3Timeout * 1000 };
  const archive = isS3Url(options.root) ? new S3Archive(options.root, s3) : undefined;
  const root = archive ? archive.root : resolve(options.root);
  const mounted = options.server;
  const base = mountPath(options.path);
  // Before anything else: a server on a public address without a policy does not start.
  const access = new AccessControl(options.access ?? {}, mounted ? listeningHost(mounted) ?? '127.0.0.1' : o.host);
  if (!archive) {
    const kind = statSync(root, { throwIfNoEntry: false });
    if (!kind) throw new CodedError('NO_SUCH_FOLDER', `no such folder: ${root}`);
    if (!kind.isDirectory()) throw new CodedError('NOT_A_FOLDER', `${root} is not a folder: give the folder that holds the DICOM files`);
  }
  checkBounds(options);
  // Whose word on the client's address is taken (none by default): the per-address limit, the
  // logs and the authorize hook see that address.
  const clientAddress = clientAddressOf(o.trustProxy, o.proxyHeader);

  // Listen before the first indexing (minutes on a large archive): a port in use is found at once,
  // /healthz answers and /readyz says 503 until the index is ready, as load balancers expect.
  let serving: { routes: RequestHandler; upgrade: UpgradeHandler } | undefined;
  let progress: RefreshProgress | undefined;
  const starting = startingRoutes(base, () => progress);
  // Its sources are read once it loads, after the start (its events are kept until then).
  const metrics = lateMetrics({
    connections: () => stream.stats.connections,
    stats: () => stream.stats,
    frameCache: () => frames.cacheStats,
    indexCache: () => index.catalogue.cacheStats,
    index: () => index.counts(),
  });
  const to: AttachTo = mounted ? { kind: 'mount', server: mounted, base, policy: options.access ?? {} }
    : options.noServer ? { kind: 'none' } : {
      kind: 'port', port: o.port, host: o.host, tls: options.tls, base,
      guard: { headerTimeoutMs: o.headerTimeout * 1000, maxPending: o.maxPendingConnections, onDropped: (reason) => metrics.connectionRefused(reason) },
    };
  const attachment = await attach(to,
    (req, socket, head) => (serving ? serving.upgrade(req, socket, head) : refuseUpgradeWhileStarting(socket)),
    (req, res) => (serving ? serving.routes(req, res) : starting(req, res)), log)
    .catch((e: unknown) => { archive?.close(); throw e; });
  if (to.kind === 'port') log.info('listening: indexing first (/readyz answers 503 until ready)', { url: attachment.address().url });

  let index: LiveIndex;
  try {
    index = await LiveIndex.open({
      root, indexDir: options.indexDir, s3, archive, indexCacheBytes: o.indexCache, parseWorkers: o.parseWorkers, followSymlinks: o.followSymlinks,
      watch: o.watch, rescanMs: o.rescanInterval * 1000, readOnly: o.readOnlyIndex, indexPollMs: options.indexPollMs, saveRetryMs: options.saveRetryMs, log,
      onProgress: (p) => { progress = p; options.onIndexProgress?.(p); },
    });
  } catch (e) {
    const listening = attachment.stopListening();
    listening.dropConnections();
    await listening.closed;
    archive?.close();
    throw e;
  }
  const frames = new FrameSource({
    root, followSymlinks: o.followSymlinks, maxOpenFiles: o.maxOpenFiles, frameCacheBytes: o.frameCache,
    readConcurrency: o.readConcurrency, readahead: o.readahead, archive,
  });
  const stream = new StreamHandler({
    catalogue: () => index.catalogue,
    readChunk: (frame, offset, length, into, at, next) => frames.readChunk(frame, offset, length, into, at, next),
    wholeFrames: { read: (frame, next) => frames.frame(frame, next), recycle: (bytes) => frames.recycle(bytes) },
    readahead: frames.readahead, readConcurrency: o.readConcurrency,
    limits: sessionLimits(o), connectionLimits: connectionLimits(o), access, clientAddress,
    serverName: SERVER_NAME, transferSyntaxes: indexedTransferSyntaxes(), httpStream: o.httpStream, base, log, observe: metrics,
  });
  index.onChange = (change) => {
    for (const path of change.staleFiles) frames.forget(path);
    stream.seriesUpdated(change.series);
  };

  let ready = false;
  const plainRoutes = httpRoutes({ base, serverName: SERVER_NAME, ready: () => ready, metrics, viewer: !mounted && !options.noServer });
  const dicomweb = o.dicomweb
    ? dicomWebRoutes({ base: base + mountPath(o.dicomwebPath), catalogue: () => index.catalogue, frames, access, clientAddress, log })
    : undefined;
  const routes: RequestHandler = (req, res) => stream.handleRequest(req, res) || (dicomweb?.(req, res) ?? false) || plainRoutes(req, res);
  const upgrade: UpgradeHandler = (req, socket, head) => stream.handleUpgrade(req, socket, head);
  serving = { routes, upgrade };
  ready = true;
  // prom-client loads on the first scrape or a few seconds after start, not while the first
  // clients connect.
  setTimeout(() => metrics.load(), 3000).unref();

  let closing: Promise<void> | undefined;
  const close = async (deadlineMs: number): Promise<void> => {
    ready = false;
    const listening = attachment.stopListening();
    // Frames in flight finish, up to the deadline; what is left is cancelled by the close.
    const cancelled = await stream.drain(Date.now() + deadlineMs);
    if (cancelled) log.warn('shutdown deadline reached: open requests cancelled', { requests: cancelled });
    listening.dropConnections();
    await listening.closed;
    await index.close();
    await frames.close();
  };
  return {
    get url() { return attachment.address().url; },
    get port() { return attachment.address().port; },
    get catalogue() { return index.catalogue; },
    get index() { return index.summary; },
    get parses() { return index.parses; },
    refresh: () => index.refreshNow(),
    reload: async (changes = {}) => {
      // All checked before anything changes: a bad key or certificate leaves the server as it was.
      const putAccessInForce = changes.access ? await access.prepare(changes.access) : undefined;
      if (changes.tls && !attachment.setTls(changes.tls)) throw new CodedError('BAD_OPTION', 'a TLS certificate was given to a server that does not serve TLS on a port of its own');
      putAccessInForce?.();
      return index.refreshNow();
    },
    stats: stream.stats,
    files: frames.files,
    cache: () => frames.cacheStats,
    wholeFrames: () => frames.wholeFrameStats,
    indexCache: () => index.catalogue.cacheStats,
    metrics: () => metrics.text().then((m) => m.text),
    handleUpgrade: upgrade,
    handleRequest: routes,
    close: (c = {}) => (closing ??= close(c.deadlineMs ?? o.shutdownTimeout * 1000)),
  };
}
