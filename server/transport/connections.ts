// The door: HTTP upgrades to WebSocket are admitted here or refused with an HTTP status before any
// WebSocket exists — a browser Origin not allowed (403), too many connections in all (503) or
// from one client address (429; behind trusted proxies, the client they name), a server shutting
// down (503). Admitted sockets are pinged; a peer that does not answer one ping before the next
// is cut, and one that has not completed the protocol handshake in time is closed: dead or silent
// peers must not hold their place under the limits.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ClientAddressOf } from '../client-address.js';
import type { Logger } from '../log.js';
import { LogThrottle } from '../log-throttle.js';

export interface ConnectionLimits {
  /** Open connections at most, in all. */
  maxConnections: number;
  /** Open connections at most from one remote address. */
  maxConnectionsPerAddress: number;
  /** Ping every this many ms; a peer silent for a whole interval is cut. 0: no heartbeat. */
  heartbeatMs: number;
  /** Largest client message (ws maxPayload); larger ones close the connection with 1009. */
  maxMessageBytes: number;
  /** A connection must complete the protocol handshake within this many ms, or is closed (1008). 0: no limit. */
  handshakeTimeoutMs: number;
}

/** An admitted connection, as the door needs to see it. */
export interface AdmittedConnection {
  /** The protocol handshake is through (Welcome sent). */
  readonly handshaken: boolean;
}

/** Close code of a connection that did not complete the handshake in time (policy violation). */
export const HANDSHAKE_TIMEOUT_CLOSE = 1008;
/** A closed peer that does not answer the close frame in this long is cut (ws would wait 30 s). */
const CLOSE_GRACE_MS = 1000;

export interface ConnectionFrontOptions {
  limits: ConnectionLimits;
  originAllowed: (origin: string | undefined) => boolean;
  /** The client's address of an upgrade (the peer's, or the one trusted proxies name). */
  clientAddress: ClientAddressOf;
  log: Logger;
  onRefused?: (reason: string) => void;
  onConnection: (ws: WebSocket, request: IncomingMessage, clientAddress: string) => AdmittedConnection;
}

export class ConnectionFront {
  readonly sockets = new Set<WebSocket>();
  private readonly perAddress = new Map<string, number>();
  private readonly alive = new WeakMap<WebSocket, boolean>();
  private readonly wss: WebSocketServer;
  private readonly heartbeat: NodeJS.Timeout | undefined;
  private readonly warn: LogThrottle;
  private accepting = true;

  constructor(private readonly options: ConnectionFrontOptions) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: options.limits.maxMessageBytes, perMessageDeflate: false });
    this.warn = new LogThrottle(options.log);
    const every = options.limits.heartbeatMs;
    if (every > 0) {
      this.heartbeat = setInterval(() => this.beat(), every);
      this.heartbeat.unref();
    }
  }

  /** New upgrades are refused from now on (shutdown). */
  stopAccepting(): void {
    this.accepting = false;
  }

  /** Closes every socket with `code`; those that do not finish the closing handshake in `graceMs` are cut. */
  async closeAll(code: number, reason: string, graceMs = 1000): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    const closed = [...this.sockets].map((ws) => new Promise<void>((resolve) => {
      if (ws.readyState === ws.CLOSED) return resolve();
      ws.once('close', () => resolve());
      ws.close(code, reason);
    }));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(closed), new Promise<void>((r) => { timer = setTimeout(r, graceMs); })]);
    clearTimeout(timer);
    for (const ws of this.sockets) ws.terminate();
    await new Promise<void>((r) => this.wss.close(() => r()));
  }

  /** Admits an HTTP upgrade (a WebSocket is made and handed to `onConnection`) or refuses it. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const address = this.options.clientAddress(request);
    const refuse = (status: number, text: string, reason: string) => {
      this.options.onRefused?.(reason);
      this.warn.info('connection refused', { from: address, reason }, `refused ${reason}`);
      const body = `${text}\n`;
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      socket.destroy();
    };
    if (!this.accepting) return refuse(503, 'Service Unavailable', 'shutting down');
    const origin = request.headers.origin;
    if (!this.options.originAllowed(origin)) return refuse(403, 'Forbidden', 'origin');
    if (this.sockets.size >= this.options.limits.maxConnections) return refuse(503, 'Service Unavailable', 'max connections');
    if ((this.perAddress.get(address) ?? 0) >= this.options.limits.maxConnectionsPerAddress) {
      return refuse(429, 'Too Many Requests', 'max connections per address');
    }
    // Counted now: upgrades completing together cannot pass the limits together.
    this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1);
    let counted = true;
    const release = () => {
      if (!counted) return;
      counted = false;
      const n = (this.perAddress.get(address) ?? 1) - 1;
      if (n > 0) this.perAddress.set(address, n);
      else this.perAddress.delete(address);
    };
    socket.once('close', release);
    this.wss.handleUpgrade(request, socket, head, (ws) => {
      this.sockets.add(ws);
      this.alive.set(ws, true);
      ws.on('pong', () => this.alive.set(ws, true));
      ws.on('close', () => {
        this.sockets.delete(ws);
        release();
      });
      const connection = this.options.onConnection(ws, request, address);
      this.handshakeDeadline(ws, connection, address);
    });
  }

  /** Closes `ws` if it has not completed the handshake in time (a socket that never says Hello). */
  private handshakeDeadline(ws: WebSocket, connection: AdmittedConnection, address: string): void {
    const ms = this.options.limits.handshakeTimeoutMs;
    if (ms <= 0) return;
    const timer = setTimeout(() => {
      if (connection.handshaken || ws.readyState !== ws.OPEN) return;
      this.options.onRefused?.('handshake timeout');
      this.warn.warn('no protocol handshake within the handshake timeout: connection closed', { from: address, seconds: ms / 1000 });
      ws.close(HANDSHAKE_TIMEOUT_CLOSE, `no Hello within ${ms / 1000} s`);
      // A peer that does not read does not answer the close frame either.
      setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
    }, ms);
    timer.unref();
    ws.once('close', () => clearTimeout(timer));
  }

  private beat(): void {
    for (const ws of this.sockets) {
      if (this.alive.get(ws) === false) {
        this.options.log.info('no answer to ping: connection cut');
        ws.terminate();
        continue;
      }
      this.alive.set(ws, false);
      ws.ping();
    }
  }
}
