// The HTTP stream (proto/README.md §9): a browser's WebSocket receives several times slower than a
// streamed fetch (Chromium moves each WebSocket message through a 128 KB pipe between its network
// service and the page), so a client may take the server's messages over one long GET response
// instead: each message exactly as on the WebSocket, behind its length (4 bytes, little-endian);
// a zero length is a keep-alive. The WebSocket still carries the client's messages, the pings and
// the close. A connection is offered a key in Welcome, the GET with that key attaches the stream
// (once), and the client's UseHttpStream switches the connection's outbox to it.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { encodeServerMessage } from '../../shared/protocol.js';
import type { Logger } from '../log.js';
import type { SessionSocket } from './outbox.js';

export const HTTP_STREAM_PATH = '/http-stream';

export interface HttpStreamsOptions {
  /** The stream's path prefix: '' or the mount path ('/dicomstream'). */
  base: string;
  originAllowed: (origin: string | undefined) => boolean;
  /** A keep-alive record this often on a stream with nothing else to send (proxies cut idle responses); 0: never. */
  keepAliveMs: number;
  log: Logger;
}

/** An offer made to one connection: the key it was given, until the GET comes or the connection ends. */
export interface HttpStreamOffer {
  readonly key: string;
  withdraw(): void;
}

export class HttpStreams {
  private readonly offers = new Map<string, (sink: HttpStreamSink) => void>();
  private readonly open = new Set<HttpStreamSink>();
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: HttpStreamsOptions) {
    if (options.keepAliveMs > 0) {
      this.timer = setInterval(() => { for (const sink of this.open) sink.keepAlive(); }, options.keepAliveMs);
      this.timer.unref();
    }
  }

  /** HTTP streams attached now. */
  get count(): number { return this.open.size; }

  /** A key for one connection; `attached` gets its stream when the GET with it arrives. */
  offer(attached: (sink: HttpStreamSink) => void): HttpStreamOffer {
    // 128 random bits: the key is the only credential of the GET (the connection was authenticated).
    const key = randomBytes(16).toString('hex');
    this.offers.set(key, attached);
    return { key, withdraw: () => { this.offers.delete(key); } };
  }

  /** Answers `GET <base>/http-stream?key=…` and returns true; false for any other request. */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const [path, query = ''] = (req.url ?? '/').split('?', 2) as [string, string?];
    if (path !== this.options.base + HTTP_STREAM_PATH) return false;
    const origin = req.headers.origin;
    if (!this.options.originAllowed(origin)) return refuse(res, 403, 'origin not allowed\n');
    const cors: Record<string, string> = origin === undefined ? {} : { 'access-control-allow-origin': origin, vary: 'Origin' };
    if (req.method !== 'GET') return refuse(res, 405, 'GET only\n', { ...cors, allow: 'GET' });
    const key = new URLSearchParams(query).get('key') ?? '';
    const attach = this.offers.get(key);
    // Unknown, used or withdrawn: nothing says which.
    if (!attach) return refuse(res, 404, 'no such stream\n', cors);
    this.offers.delete(key);
    req.socket.setTimeout(0);
    req.socket.setNoDelay(true);
    res.writeHead(200, {
      ...cors,
      'content-type': 'application/octet-stream',
      'cache-control': 'no-store',
      // nginx would otherwise buffer the response (it is a stream: each message is wanted now).
      'x-accel-buffering': 'no',
    });
    const sink = new HttpStreamSink(res, () => this.open.delete(sink));
    this.open.add(sink);
    sink.send(encodeServerMessage({ httpStreamOpened: {} }).buffer, () => {});
    this.options.log.debug('HTTP stream attached', { from: req.socket.remoteAddress });
    attach(sink);
    return true;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    for (const sink of this.open) sink.close();
    this.offers.clear();
  }
}

/** One attached stream: where a connection's messages go once the client switched to it. */
export class HttpStreamSink implements SessionSocket {
  private ended = false;
  private wrote = false;
  private lostListener: (() => void) | undefined;

  constructor(private readonly res: ServerResponse, private readonly onEnd: () => void) {
    // The client went away (a closed tab, an aborted fetch) or the socket failed.
    res.on('close', () => {
      if (this.ended) return;
      this.ended = true;
      this.onEnd();
      this.lostListener?.();
    });
  }

  /** Calls `listener` if the stream ends other than by close(). */
  onLost(listener: () => void): void {
    this.lostListener = listener;
  }

  send(data: Uint8Array, written: (error?: Error) => void): void {
    if (this.ended) {
      written(new Error('HTTP stream closed'));
      return;
    }
    this.wrote = true;
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32LE(data.length, 0);
    // One write to the socket for the length and the message (writev).
    this.res.cork();
    this.res.write(length);
    this.res.write(data, (error) => written(error ?? undefined));
    this.res.uncork();
  }

  /** A zero-length record, when nothing was sent since the last call. */
  keepAlive(): void {
    if (!this.ended && !this.wrote) this.res.write(Buffer.alloc(4));
    this.wrote = false;
  }

  /** Ends the response (the connection is over). */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd();
    this.res.end();
  }
}

function refuse(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): true {
  res.writeHead(status, { ...headers, 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
  return true;
}
