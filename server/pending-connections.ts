// Connections that hold a socket without a request to show for it: opened and silent, sending their
// headers a byte at a time (slowloris), mid-TLS-handshake, or idle between two requests. No other
// limit counts them (the connection limits count WebSockets), and each holds a file descriptor:
// tens of thousands of them once left the server unable to accept anything, /healthz included.
// On a server of dicomstream's own they are bounded twice: in time (the header timeout, well
// below Node's defaults: 60 s, checked every 30 s) and in number. Past the bound the connection
// that has waited longest is closed, as nginx frees its oldest idle connections when it runs out:
// an attacker's stalled sockets are the oldest, so new clients (and health checks) still get in,
// where refusing new connections would lock them out for as long as the attack lasts.
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { plainAddress } from './client-address.js';
import type { LogThrottle } from './log-throttle.js';

/**
 * What Node answers a request that went wrong, by its error code (any other parser error: 400);
 * a TLS error or a reset connection gets no answer.
 */
const CLIENT_ERROR_ANSWERS: Record<string, string> = {
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
};

/** Why the guard closed a connection (the connections-refused metric's reason). */
export type DropReason = 'pending connections' | 'request timeout';

export interface PendingConnectionsOptions {
  /** Connections waiting for a request at most. */
  maxPending: number;
  warn: LogThrottle;
  onDropped(reason: DropReason): void;
}

/**
 * Node's server options that bound how long a request may take to arrive: its headers (and its
 * body: dicomstream's requests have none), checked often enough to matter, and the TLS handshake.
 */
export function requestTimeouts(headerTimeoutMs: number): {
  headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number; handshakeTimeout: number;
} {
  const ms = Math.max(1, Math.round(headerTimeoutMs));
  return {
    headersTimeout: ms, requestTimeout: ms, handshakeTimeout: ms,
    connectionsCheckingInterval: Math.min(1000, Math.max(25, Math.round(ms / 4))),
  };
}

/**
 * Bounds the connections of `server` waiting for a request, and answers (and logs) the requests
 * that never came whole. Only for a server dicomstream created: an embedder's connections are its own.
 */
export function boundPendingConnections(server: HttpServer | HttpsServer, options: PendingConnectionsOptions): void {
  // By TCP 4-tuple, not by socket object: on HTTPS the request's socket is a TLSSocket wrapping
  // the one 'connection' gave, and the tuple is what both share.
  const connections = new Map<string, Socket>();
  /** Keys of the connections waiting for a request, oldest first (a Set keeps insertion order). */
  const waiting = new Set<string>();
  /** Requests being answered, by connection (pipelined ones overlap). */
  const busy = new Map<string, number>();

  /** `key` waits (the newest), the one waiting longest closed first if the bound is reached. */
  const wait = (key: string) => {
    while (waiting.size >= options.maxPending) {
      const oldest = waiting.values().next().value as string;
      const evicted = connections.get(oldest);
      waiting.delete(oldest);
      connections.delete(oldest);
      options.onDropped('pending connections');
      options.warn.warn('too many connections waiting for an HTTP request: the one waiting longest was closed', {
        from: plainAddress(evicted?.remoteAddress ?? ''), max: options.maxPending,
      });
      evicted?.destroy();
    }
    waiting.add(key);
  };

  server.on('connection', (socket: Socket) => {
    const key = tupleOf(socket);
    if (!key) return;
    connections.set(key, socket);
    wait(key);
    socket.once('close', () => {
      if (connections.get(key) !== socket) return;
      connections.delete(key);
      waiting.delete(key);
      busy.delete(key);
    });
  });

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const key = tupleOf(req.socket);
    if (!key || !connections.has(key)) return;
    waiting.delete(key);
    busy.set(key, (busy.get(key) ?? 0) + 1);
    let answered = false;
    const done = () => {
      if (answered) return;
      answered = true;
      const left = (busy.get(key) ?? 1) - 1;
      if (left > 0) return void busy.set(key, left);
      busy.delete(key);
      // Kept alive for another request: waiting again, the newest.
      if (connections.has(key) && !req.socket.destroyed) wait(key);
    };
    res.once('finish', done);
    res.once('close', done);
  });

  // An upgraded connection is a WebSocket now, counted by the connection limits.
  server.on('upgrade', (req: IncomingMessage) => {
    const key = tupleOf(req.socket);
    if (!key) return;
    waiting.delete(key);
    connections.delete(key);
  });

  // Taking 'clientError' over from Node means answering as it would (408, 431, 400) besides logging.
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    const timedOut = error.code === 'ERR_HTTP_REQUEST_TIMEOUT' || error.code === 'ERR_TLS_HANDSHAKE_TIMEOUT';
    if (timedOut) {
      options.onDropped('request timeout');
      options.warn.warn('no whole HTTP request within the header timeout: connection closed', {
        from: plainAddress((socket as Socket).remoteAddress ?? ''), error: error.code,
      });
    }
    const code = error.code ?? '';
    const status = CLIENT_ERROR_ANSWERS[code] ?? (code.startsWith('HPE_') ? '400 Bad Request' : undefined);
    if (status && socket.writable && (socket as Socket).bytesWritten === 0) {
      socket.write(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    }
    socket.destroy();
  });
}

function tupleOf(socket: Socket): string | undefined {
  const { remoteAddress, remotePort, localAddress, localPort } = socket;
  return remoteAddress === undefined ? undefined : `${remoteAddress} ${remotePort} ${localAddress} ${localPort}`;
}
