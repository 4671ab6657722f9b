// Where the stream is reached: a port of its own (HTTP or HTTPS, answering the routes and 404 to
// the rest, and bounding the requests that never come whole: pending-connections.ts), an
// embedder's server under a path (as `ws` does with `server` + `path`), or nowhere
// (`noServer`: the embedder hands over upgrades itself). One shape for the three, so startServer
// does not care which.
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { CodedError } from '../shared/coded-error.js';
import { AccessControl, isLoopback, type AccessPolicy } from './access.js';
import type { RequestHandler } from './http-routes.js';
import type { Logger } from './log.js';
import { LogThrottle } from './log-throttle.js';
import { boundPendingConnections, requestTimeouts, type DropReason } from './pending-connections.js';

export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** How a server of dicomstream's own guards itself against requests that never come whole. */
export interface RequestGuard {
  /** A connection must send its whole request (TLS handshake included) within this long. */
  headerTimeoutMs: number;
  /** Connections waiting for a request at most; past it, the one waiting longest is closed. */
  maxPending: number;
  onDropped(reason: DropReason): void;
}

export type AttachTo =
  | { kind: 'port'; port: number; host: string; tls?: { cert: string | Buffer; key: string | Buffer }; base: string; guard: RequestGuard }
  | { kind: 'mount'; server: HttpServer | HttpsServer; base: string; policy: AccessPolicy }
  | { kind: 'none' };

export interface Attachment {
  /** ws(s)://host:port/base/ and the port, or '' and 0 while nothing listens. */
  address(): { url: string; port: number };
  /** Stops taking upgrades; a port of its own stops listening (resolves once its sockets are gone). */
  stopListening(): { closed: Promise<void>; dropConnections(): void };
  /** A port of its own with TLS: takes a new certificate for new connections (renewed, on SIGHUP); false otherwise. */
  setTls(tls: { cert: string | Buffer; key: string | Buffer }): boolean;
}

export async function attach(to: AttachTo, upgrade: UpgradeHandler, routes: RequestHandler, log: Logger): Promise<Attachment> {
  if (to.kind === 'port') return listen(to, upgrade, routes, log);
  if (to.kind === 'none') return { address: () => ({ url: '', port: 0 }), stopListening: () => ({ closed: Promise.resolve(), dropConnections() {} }), setTls: () => false };
  const { server, base } = to;
  const detach = mount(server, base, upgrade, to.policy, log);
  return {
    address: () => addressOf(server, 'setSecureContext' in server, base),
    stopListening: () => { detach(); return { closed: Promise.resolve(), dropConnections() {} }; },
    setTls: () => false,
  };
}

/** The host an embedder's server listens on, once it does. */
export function listeningHost(server: HttpServer | HttpsServer): string | undefined {
  const address = server.address();
  return address && typeof address === 'object' ? address.address : undefined;
}

/** The mount path as routes compare it: '' for the root, else '/a/b' (no trailing slash). */
export function mountPath(path: string | undefined): string {
  const p = (path ?? '').replace(/\/+$/, '');
  if (p && !p.startsWith('/')) throw new CodedError('BAD_OPTION', `path must start with '/': ${path}`);
  return p;
}

function addressOf(server: HttpServer | HttpsServer, secure: boolean, base: string): { url: string; port: number } {
  const address = server.address() as AddressInfo | string | null;
  if (!address || typeof address !== 'object') return { url: '', port: 0 };
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { url: `${secure ? 'wss' : 'ws'}://${host}:${address.port}${base}/`, port: address.port };
}

async function listen(to: Extract<AttachTo, { kind: 'port' }>, upgrade: UpgradeHandler, routes: RequestHandler, log: Logger): Promise<Attachment> {
  const answer = (req: IncomingMessage, res: ServerResponse) => {
    if (routes(req, res)) return;
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('not found\n');
  };
  const { handshakeTimeout, ...timeouts } = requestTimeouts(to.guard.headerTimeoutMs);
  const http = to.tls
    ? createHttpsServer({ cert: to.tls.cert, key: to.tls.key, handshakeTimeout, ...timeouts }, answer)
    : createHttpServer(timeouts, answer);
  boundPendingConnections(http, { maxPending: to.guard.maxPending, warn: new LogThrottle(log), onDropped: to.guard.onDropped });
  http.on('upgrade', upgrade);
  await new Promise<void>((resolveListen, reject) => {
    http.once('error', reject);
    http.listen(to.port, to.host, () => { http.off('error', reject); resolveListen(); });
  });
  return {
    address: () => addressOf(http, Boolean(to.tls), to.base),
    stopListening: () => ({
      closed: new Promise<void>((r) => http.close(() => r())),
      dropConnections: () => http.closeAllConnections(),
    }),
    setTls: (tls) => {
      if (!('setSecureContext' in http)) return false;
      http.setSecureContext({ cert: tls.cert, key: tls.key });
      return true;
    },
  };
}

/**
 * Takes the upgrades to `base` (and `base/`) on an embedder's server. Other upgrades are left to
 * the server's other 'upgrade' listeners; with none, they get 404 rather than hanging. When the
 * server starts listening on a public address without an access policy, every upgrade is refused.
 */
function mount(server: HttpServer | HttpsServer, base: string, upgrade: UpgradeHandler, policy: AccessPolicy, log: Logger): () => void {
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
