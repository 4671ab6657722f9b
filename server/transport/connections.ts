// The door: HTTP upgrades to WebSocket are admitted here or refused with an HTTP status before any
// WebSocket exists — a browser Origin not allowed (403), too many connections in all (503) or
// from one address (429), a server shutting down (503). Admitted sockets are pinged; a peer that
// does not answer one ping before the next is cut (dead peers must not hold their resources).
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../log.js';

export interface ConnectionLimits {
  /** Open connections at most, in all. */
  maxConnections: number;
  /** Open connections at most from one remote address. */
  maxConnectionsPerAddress: number;
  /** Ping every this many ms; a peer silent for a whole interval is cut. 0: no heartbeat. */
  heartbeatMs: number;
  /** Largest client message (ws maxPayload); larger ones close the connection with 1009. */
  maxMessageBytes: number;
}

export interface ConnectionFrontOptions {
  limits: ConnectionLimits;
  originAllowed: (origin: string | undefined) => boolean;
  log: Logger;
  onRefused?: (reason: string) => void;
  onConnection: (ws: WebSocket, request: IncomingMessage) => void;
}

export class ConnectionFront {
  readonly sockets = new Set<WebSocket>();
  private readonly perAddress = new Map<string, number>();
  private readonly alive = new WeakMap<WebSocket, boolean>();
  private readonly wss: WebSocketServer;
  private readonly heartbeat: NodeJS.Timeout | undefined;
  private accepting = true;

  constructor(private readonly options: ConnectionFrontOptions) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: options.limits.maxMessageBytes, perMessageDeflate: false });
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
    const address = request.socket.remoteAddress ?? '';
    const refuse = (status: number, text: string, reason: string) => {
      this.options.onRefused?.(reason);
      this.options.log.info('connection refused', { from: address, reason });
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
      this.options.onConnection(ws, request);
    });
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
