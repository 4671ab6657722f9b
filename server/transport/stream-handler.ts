// The WebSocket side of the server, owning no port: admits upgrades (connections.ts), makes a
// session per connection, and runs the one scheduler and pump all sessions share (weighted
// round-robin between clients needs to see them all). Mount it on any HTTP server with
// `handleUpgrade`, as `ws`'s `noServer` mode does.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { bearerToken, type AccessControl } from '../access.js';
import type { ClientAddressOf } from '../client-address.js';
import type { Catalogue } from '../index/catalogue.js';
import type { Logger } from '../log.js';
import { FrameBuffers } from '../files/frame-buffers.js';
import { ConnectionFront, type ConnectionLimits } from './connections.js';
import { HttpStreams } from './http-stream.js';
import { Pump } from './pump.js';
import { Scheduler } from './scheduler.js';
import { SessionAccess } from './session-access.js';
import { Session, type QueuedFrame, type ReadChunk, type SessionLimits, type WholeFrames } from './session.js';

/** Free chunk buffers kept for reuse, at most. */
const CHUNK_BUFFERS_FREE_BYTES = 8 * 1024 * 1024;

/** What the stream handler reports as it goes (metrics). */
export interface StreamObserver {
  connectionOpened(): void;
  connectionRefused(reason: string): void;
  error(code: number): void;
  frameSent(seconds: number): void;
}

export interface StreamHandlerOptions {
  catalogue: () => Catalogue;
  readChunk: ReadChunk;
  wholeFrames?: WholeFrames;
  readahead: number;
  readConcurrency: number;
  limits: SessionLimits;
  connectionLimits: ConnectionLimits;
  access: AccessControl;
  /** The client's address of a request: the peer's, or the one trusted proxies name. */
  clientAddress: ClientAddressOf;
  serverName: string;
  transferSyntaxes: string[];
  /** Offer clients the HTTP stream (at `<base>/http-stream`, answered by handleRequest). */
  httpStream: boolean;
  /** The path the stream lives under: '' or the mount path. */
  base: string;
  log: Logger;
  observe: StreamObserver;
}

/**
 * Counters; maxBufferedBytes is the most unsent data any one connection held; httpStreams, the
 * connections whose server messages go over an HTTP stream now.
 */
export interface StreamStats { connections: number; framesSent: number; bytesSent: number; errors: number; maxBufferedBytes: number; requestsCancelled: number; readonly httpStreams: number }

export class StreamHandler {
  readonly stats: StreamStats;
  private readonly sessions = new Map<number, Session>();
  private readonly httpStreams: HttpStreams | undefined;
  private readonly scheduler: Scheduler<QueuedFrame>;
  private readonly pump: Pump<QueuedFrame>;
  private readonly front: ConnectionFront;
  private nextConnection = 1;

  constructor(private readonly options: StreamHandlerOptions) {
    const { limits, log } = options;
    const httpStreams = this.httpStreams = options.httpStream
      ? new HttpStreams({
        base: options.base, originAllowed: (origin) => options.access.originAllowed(origin), keepAliveMs: options.connectionLimits.heartbeatMs,
        clientAddress: options.clientAddress, log,
      })
      : undefined;
    this.stats = { connections: 0, framesSent: 0, bytesSent: 0, errors: 0, maxBufferedBytes: 0, requestsCancelled: 0, get httpStreams() { return httpStreams?.count ?? 0; } };
    this.scheduler = new Scheduler<QueuedFrame>({ chunkBytes: limits.chunkBytes });
    this.pump = new Pump<QueuedFrame>(this.scheduler, this.sessions, options.readConcurrency);
    // Chunk messages' buffers, in size classes (a 512 KiB slice does not hold a 1 MiB buffer);
    // 8 MiB of free ones kept for reuse, more allocated as needed.
    const buffers = new FrameBuffers(CHUNK_BUFFERS_FREE_BYTES);
    const context = {
      catalogue: options.catalogue, scheduler: this.scheduler, kick: () => this.pump.kick(), readChunk: options.readChunk,
      wholeFrames: options.wholeFrames,
      readahead: options.readahead, limits, serverName: options.serverName, transferSyntaxes: options.transferSyntaxes,
      stats: this.stats, buffers, queuedFramesInAll: () => this.scheduler.queuedFramesInAll(), httpStreams,
      observe: { error: (code: number) => options.observe.error(code), frameSent: (s: number) => options.observe.frameSent(s) },
    };
    this.front = new ConnectionFront({
      limits: options.connectionLimits,
      originAllowed: (origin) => options.access.originAllowed(origin),
      clientAddress: options.clientAddress,
      log,
      onRefused: (reason) => options.observe.connectionRefused(reason),
      onConnection: (ws, req, from) => this.connected(ws, req, from, context),
    });
  }

  /** Takes over an HTTP upgrade request: admits it as a dicomstream connection or refuses it. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.front.handleUpgrade(request, socket, head);
  }

  /** Answers a GET of a connection's HTTP stream and returns true; false for any other request. */
  handleRequest(request: IncomingMessage, response: ServerResponse): boolean {
    return this.httpStreams?.handleRequest(request, response) ?? false;
  }

  /** Frame requests still open over all connections. */
  get openRequests(): number {
    let n = 0;
    for (const id of this.sessions.keys()) n += this.scheduler.openRequests(id);
    return n;
  }

  /** Tells the clients that opened these series that they changed. */
  seriesUpdated(series: ReadonlyArray<{ seriesInstanceUid: string; removed: boolean }>): void {
    for (const { seriesInstanceUid, removed } of series) {
      for (const session of this.sessions.values()) session.seriesUpdated(seriesInstanceUid, removed);
    }
  }

  /** Refuses new connections (HTTP 503) from now on. */
  stopAccepting(): void {
    this.front.stopAccepting();
  }

  /**
   * Lets frames in flight finish until `deadline` (a Date.now() time), then closes every
   * connection with 1001. Resolves with the requests that were still open and got cancelled.
   */
  async drain(deadline: number): Promise<number> {
    this.stopAccepting();
    while (this.openRequests > 0 && Date.now() < deadline) await this.requestsSettled(deadline);
    const cancelled = this.openRequests;
    await this.front.closeAll(1001, 'server shutting down');
    this.httpStreams?.close();
    return cancelled;
  }

  /** Resolves when a request completes or a connection closes (or at the deadline). */
  private requestsSettled(deadline: number): Promise<void> {
    // The scheduler has no events; its state changes only as chunks go out, which the pump
    // drives: polling it briefly during a shutdown costs nothing while serving.
    return new Promise((resolve) => setTimeout(resolve, Math.max(1, Math.min(20, deadline - Date.now()))));
  }

  private connected(ws: WebSocket, req: IncomingMessage, from: string, context: ConstructorParameters<typeof Session>[2]): Session {
    const { log, access } = this.options;
    const id = this.nextConnection++;
    const clog = log.child({ conn: id });
    this.stats.connections++;
    this.options.observe.connectionOpened();
    clog.debug('connected', { from });
    const sessionAccess = new SessionAccess(access, { remoteAddress: from, origin: req.headers.origin, headers: req.headers }, bearerToken(req.headers));
    const session = new Session(id, ws, context, clog, sessionAccess);
    this.sessions.set(id, session);
    ws.on('message', (data, isBinary) => {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : data instanceof ArrayBuffer ? new Uint8Array(data) : data;
      session.onMessage(bytes, isBinary);
    });
    // A protocol violation (e.g. a message over maxPayload) closes the socket; ws reports it here.
    ws.on('error', (e) => clog.warn('socket error', { error: e.message }));
    ws.on('close', (code) => {
      this.stats.connections--;
      session.onClose();
      this.sessions.delete(id);
      clog.debug('closed', { code });
    });
    return session;
  }
}
